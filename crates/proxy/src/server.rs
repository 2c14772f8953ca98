//! Turning checked `Settings` into listeners on a `Core`: one session factory per listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tether_core::{Core, SessionFactory};

use crate::config::{Settings, Target};
use crate::http::{HttpSession, HttpTarget};
use crate::static_files::FileOptions;
use crate::tcp::{TcpFile, TcpTunnel};

/// Bind every listener of `settings` on `core`. Returns the bound addresses, in order.
pub fn install(core: &mut Core, settings: &Settings) -> io::Result<Vec<SocketAddr>> {
    let server: Arc<str> = Arc::from(settings.server_name.as_str());
    let mut bound = Vec::new();
    for spec in &settings.listeners {
        let spec = Arc::new(spec.clone());
        let server = server.clone();
        let factory: SessionFactory = match spec.target.clone() {
            Target::TcpUpstream(addr) => {
                Box::new(move |_| Box::new(TcpTunnel::new(spec.clone(), addr)))
            }
            Target::TcpFile(path) => {
                Box::new(move |_| Box::new(TcpFile::new(spec.clone(), path.clone())))
            }
            Target::HttpProxy(addr) => Box::new(move |_| {
                Box::new(HttpSession::new(
                    spec.clone(),
                    server.clone(),
                    HttpTarget::Proxy(addr),
                ))
            }),
            Target::HttpFiles(root) => {
                let files = Arc::new(FileOptions::new(root));
                Box::new(move |_| {
                    Box::new(HttpSession::new(
                        spec.clone(),
                        server.clone(),
                        HttpTarget::Files(files.clone()),
                    ))
                })
            }
        };
        let listen = settings.listeners[bound.len()].listen;
        let id = core
            .listen(listen, factory)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
        bound.push(core.local_addr(id).unwrap_or(listen));
    }
    Ok(bound)
}
