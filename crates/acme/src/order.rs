//! One ACME conversation, on the helper thread's runtime (instant-acme does the JWS, the
//! nonces and the HTTP): the account (read from the storage, or created once under the
//! `account` lease and stored), then for one name: new order → publish the challenge
//! answer → ready → wait for validation → finalise with a fresh key (instant-acme's rcgen
//! CSR) → download the chain. The challenge answers are withdrawn whatever happens.
//!
//! ARI (RFC 9773): when the directory offers renewal information, `renewal_window` asks
//! for the certificate's suggested window.

use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, CertificateIdentifier,
    ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, Order, OrderStatus,
    RetryPolicy,
};
use rustls::pki_types::CertificateDer;

use super::challenge::alpn_certificate;
use super::storage::{Lease, Store};
use super::Acme;
use tether_config::acme::Challenge;

/// What an order brings back.
pub(super) struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// How long validation and issuance may take before the attempt counts as failed.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

fn builder(acme: &Acme) -> Result<AccountBuilder, String> {
    let b = match &acme.settings.ca {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    };
    b.map_err(|e| format!("ACME HTTP client: {e}"))
}

/// The stored account, or a new one (created once: other instances wait for the lease
/// holder's and read it).
pub(super) async fn account(acme: &Acme, store: &Store) -> Result<Account, String> {
    let dir = &acme.settings.directory;
    for _ in 0..120 {
        let stored = store
            .read_account()
            .map_err(|e| format!("{}: {e}", store.account_path().display()))?;
        if let Some(json) = stored {
            let creds: AccountCredentials = serde_json::from_str(&json)
                .map_err(|e| format!("{}: {e}", store.account_path().display()))?;
            return builder(acme)?
                .from_credentials(creds)
                .await
                .map_err(|e| format!("ACME directory {dir}: {e}"));
        }
        let lease = store
            .lease("account", acme.settings.lease)
            .map_err(|e| format!("storage {}: {e}", store.root().display()))?;
        let Lease::Held(_guard) = lease else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if store.read_account().ok().flatten().is_some() {
            continue;
        }
        let contact: Vec<String> = acme
            .settings
            .email
            .iter()
            .map(|e| format!("mailto:{e}"))
            .collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = acme
            .settings
            .eab
            .as_ref()
            .map(|e| ExternalAccountKey::new(e.kid.clone(), &e.hmac_key));
        let new = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let (account, creds) = builder(acme)?
            .create(&new, dir.clone(), eab.as_ref())
            .await
            .map_err(|e| format!("creating an account at {dir}: {e}"))?;
        let json = serde_json::to_string(&creds).map_err(|e| format!("account: {e}"))?;
        store
            .write_account(&json)
            .map_err(|e| format!("{}: {e}", store.account_path().display()))?;
        log::info!("acme: account {} created at {dir}", account.id());
        return Ok(account);
    }
    Err("another instance holds the account lease and stores no account".into())
}

/// Order a certificate for `name`.
pub(super) async fn order(acme: &Acme, account: &Account, name: &str) -> Result<Issued, String> {
    let ids = [Identifier::Dns(name.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order for {name}: {e}"))?;
    let mut published = Published::default();
    let result = run(acme, &mut order, name, &mut published).await;
    for t in &published.tokens {
        acme.remove_token(t);
    }
    if published.alpn {
        acme.remove_alpn(name);
    }
    result
}

/// The challenge answers an order published (withdrawn when it is over).
#[derive(Default)]
struct Published {
    tokens: Vec<String>,
    alpn: bool,
}

async fn run(
    acme: &Acme,
    order: &mut Order,
    name: &str,
    published: &mut Published,
) -> Result<Issued, String> {
    let challenge = acme.challenge();
    let kind = match challenge {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.map_err(|e| format!("authorization for {name}: {e}"))?;
        match a.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            s => return Err(format!("authorization for {name} is {s:?}")),
        }
        let mut ch = a.challenge(kind.clone()).ok_or_else(|| {
            format!(
                "the CA offers no {} challenge for {name}",
                challenge.as_str()
            )
        })?;
        let key_auth = ch.key_authorization();
        match challenge {
            Challenge::Http01 => {
                let token = ch.token.clone();
                published.tokens.push(token.clone());
                acme.put_token(&token, key_auth.as_str())
                    .map_err(|e| format!("storing the HTTP-01 answer: {e}"))?;
            }
            Challenge::TlsAlpn01 => {
                let cert = alpn_certificate(name, key_auth.digest().as_ref())?;
                published.alpn = true;
                acme.put_alpn(name, cert);
            }
        }
        ch.set_ready()
            .await
            .map_err(|e| format!("{} challenge for {name}: {e}", challenge.as_str()))?;
    }
    let policy = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(ORDER_TIMEOUT);
    let status = order
        .poll_ready(&policy)
        .await
        .map_err(|e| format!("waiting for the validation of {name}: {e}"))?;
    if status != OrderStatus::Ready {
        let why = why(order).await;
        return Err(format!(
            "{} validation of {name} failed ({status:?}): {why}",
            challenge.as_str()
        ));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalising the order for {name}: {e}"))?;
    let chain_pem = order
        .poll_certificate(&policy)
        .await
        .map_err(|e| format!("downloading the certificate of {name}: {e}"))?;
    Ok(Issued { chain_pem, key_pem })
}

/// The CA's reasons for a failed validation, from the challenges' errors.
async fn why(order: &mut Order) -> String {
    let mut out = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(Ok(mut a)) = authzs.next().await {
        if let Ok(state) = a.refresh().await {
            out.extend(
                state
                    .challenges
                    .iter()
                    .filter_map(|c| c.error.as_ref().map(ToString::to_string)),
            );
        }
    }
    if out.is_empty() {
        "the CA gave no reason".into()
    } else {
        out.join("; ")
    }
}

/// When ARI suggests renewing `leaf` (the start of its window), if the CA offers ARI.
pub(super) async fn renewal_window(
    account: &Account,
    leaf: &CertificateDer<'_>,
) -> Option<SystemTime> {
    let id = CertificateIdentifier::try_from(leaf).ok()?;
    let (info, _) = account.renewal_info(&id).await.ok()?;
    let start = info.suggested_window.start.unix_timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(start).ok()?))
}
