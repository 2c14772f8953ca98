//! The Redis store on a Redis Cluster, with real processes on loopback: three masters
//! (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`, no
//! replicas). Pins on keys of every slot, lookups from an instance that never saw them,
//! announcements between instances on different nodes, shared rate limits, and a slot
//! migrated (MIGRATING/IMPORTING + MIGRATE, then SETSLOT NODE) while it is in use: no
//! lookup fails (the store follows ASK during the move and MOVED after it).

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{lookup, wait_connected, wait_for, RedisServer};
use tether_store::{Access, Backend, LimitAnswer, Lookup, Options, RateRule, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);

/// A port `p` with `p` and its cluster bus port `p + 10000` both free.
fn cluster_port() -> u16 {
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        // Map the ephemeral port into 20000..30000 so the bus port fits.
        let p = 20000 + p % 10000;
        drop(l);
        if TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        common::logs();
        if !common::redis_available() {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = cluster_port();
                // In the server's own directory (see RedisServer::start_with).
                let conf = "nodes.conf";
                RedisServer::start_with(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf,
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes };
        wait_for("cluster_state:ok on every node", MINUTE, || {
            cluster.nodes.iter().all(|n| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut n.raw())
                    .is_ok_and(|s| s.contains("cluster_state:ok"))
            })
        });
        Some(cluster)
    }

    fn backend(&self) -> Backend {
        Backend::Cluster {
            nodes: self
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port))
                .collect(),
            access: Access::default(),
        }
    }

    fn open(&self) -> RedisStore {
        let store = RedisStore::open_backend(&self.backend(), &Options::default()).expect("open");
        wait_connected(&store);
        store
    }

    fn id(node: &RedisServer) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut node.raw())
            .expect("CLUSTER MYID")
    }

    fn slot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].raw())
            .expect("CLUSTER KEYSLOT")
    }

    /// The node that serves `slot`.
    fn owner(&self, slot: u16) -> usize {
        let shards: Vec<(u16, u16, Vec<redis::Value>)> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut self.nodes[0].raw())
            .expect("CLUSTER SLOTS")
            .into_iter()
            .map(|v| {
                let redis::Value::Array(items) = v else {
                    panic!("CLUSTER SLOTS entry {v:?}")
                };
                let int = |v: &redis::Value| match v {
                    redis::Value::Int(i) => *i as u16,
                    other => panic!("slot {other:?}"),
                };
                (int(&items[0]), int(&items[1]), items[2..].to_vec())
            })
            .collect();
        for (lo, hi, nodes) in shards {
            if (lo..=hi).contains(&slot) {
                let redis::Value::Array(master) = &nodes[0] else {
                    panic!("node {:?}", nodes[0])
                };
                let redis::Value::Int(port) = master[1] else {
                    panic!("port {:?}", master[1])
                };
                return self
                    .nodes
                    .iter()
                    .position(|n| i64::from(n.port) == port)
                    .expect("a known node");
            }
        }
        panic!("slot {slot} has no owner");
    }

    fn total_keys(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                redis::cmd("DBSIZE")
                    .query::<usize>(&mut n.raw())
                    .expect("DBSIZE")
            })
            .sum()
    }
}

fn cmd(node: &RedisServer, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(&mut node.raw())
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn pins_lookups_and_limits_across_slots() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = cluster.open();
    let b = cluster.open();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    b.subscribe(Box::new(move |k| {
        sink.lock().expect("heard").push(k.to_string())
    }));

    // Keys on every node (2000 keys spread over the 16384 slots).
    for i in 0..2000 {
        a.put(&format!("cookie:{i}"), &format!("s{}", i % 7), MINUTE);
    }
    wait_for("2000 pins in the cluster", Duration::from_secs(20), || {
        cluster.total_keys() == 2000
    });
    for n in &cluster.nodes {
        let k: usize = redis::cmd("DBSIZE").query(&mut n.raw()).expect("DBSIZE");
        assert!(k > 400, "node {} holds {k} of 2000 keys", n.port);
    }
    // The other instance heard the announcements (PUBLISH is broadcast by the cluster).
    wait_for("b hears a's puts", Duration::from_secs(5), || {
        heard.lock().expect("heard").len() == 2000
    });
    assert_eq!(b.get("cookie:1999").as_deref(), Some("s4"));

    // An instance that never saw them finds them all in Redis.
    let c = cluster.open();
    for i in (0..2000).step_by(7) {
        let (answer, _) = lookup(&c, &format!("cookie:{i}"), Duration::from_secs(2));
        assert_eq!(answer, Lookup::Found(format!("s{}", i % 7)), "cookie:{i}");
    }
    let (answer, _) = lookup(&c, "cookie:none", Duration::from_secs(2));
    assert_eq!(answer, Lookup::Missing);

    // Shared limits on keys of different slots: burst 2, nodelay.
    let rule = RateRule {
        interval: Duration::from_secs(60),
        burst: 2,
        nodelay: true,
    };
    for ip in 0..10 {
        let key = format!("ip:10.0.0.{ip}");
        let answers: Vec<LimitAnswer> = (0..4)
            .map(|n| {
                let store: &dyn Store = if n % 2 == 0 { &a } else { &c };
                common::limit(store, &key, &rule).0
            })
            .collect();
        assert_eq!(&answers[..3], &[LimitAnswer::Allow; 3], "{key}");
        assert!(
            matches!(answers[3], LimitAnswer::Reject { .. }),
            "{key}: {answers:?}"
        );
    }
    assert_eq!(a.stats().dropped_writes, 0);
}

#[test]
fn a_slot_migrated_during_use_costs_no_failed_lookup() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let writer = cluster.open();
    // 200 keys in one slot (a hash tag), and limit counters in the same slot.
    let keys: Vec<String> = (0..200).map(|i| format!("{{hot}}:{i}")).collect();
    for k in &keys {
        writer.put(k, "s1", MINUTE);
    }
    let slot = cluster.slot("tether:{hot}:0");
    let from = cluster.owner(slot);
    let to = (from + 1) % 3;
    let src = &cluster.nodes[from];
    let dst = &cluster.nodes[to];
    wait_for("200 keys in the hot slot", Duration::from_secs(10), || {
        let n: usize = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query(&mut src.raw())
            .expect("COUNTKEYSINSLOT");
        n == 200
    });
    // Reader connected (slot map loaded) before the move; a one-entry cache, so every
    // lookup of the cycle below asks Redis.
    let options = Options {
        max_entries: 1,
        ..Options::default()
    };
    let reader = RedisStore::open_backend(&cluster.backend(), &options).expect("open");
    wait_connected(&reader);
    let rule = RateRule {
        interval: Duration::from_millis(1),
        burst: 1000,
        nodelay: true,
    };
    let (src_id, dst_id) = (Cluster::id(src), Cluster::id(dst));
    let slot_s = slot.to_string();
    cmd(dst, &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &src_id]);
    cmd(src, &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &dst_id]);

    // Move 10 keys at a time; between moves, look keys up (some moved: ASK), write new
    // ones (SET of a key absent from the source: ASK) and count limits in the slot.
    let mut next = 0;
    let mut written = 0;
    let dst_port = dst.port.to_string();
    loop {
        let batch: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(10)
            .query(&mut src.raw())
            .expect("GETKEYSINSLOT");
        if batch.is_empty() {
            break;
        }
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &dst_port, "", "0", "5000", "KEYS"];
        migrate.extend(batch.iter().map(String::as_str));
        cmd(src, &migrate);
        for _ in 0..10 {
            let k = &keys[next % keys.len()];
            next += 1;
            let (answer, _) = lookup(&reader, k, Duration::from_secs(2));
            assert_eq!(answer, Lookup::Found("s1".into()), "{k} during the move");
        }
        writer.put(&format!("{{hot}}:new{written}"), "s2", MINUTE);
        written += 1;
        let (limit, _) = common::limit(&reader, "{hot}:ip", &rule);
        assert_eq!(limit, LimitAnswer::Allow, "limit during the move");
    }
    for n in &cluster.nodes {
        cmd(n, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &dst_id]);
    }
    assert_eq!(cluster.owner(slot), to);

    // After the move the reader's slot map is stale: MOVED, followed.
    for k in keys.iter().take(50) {
        let (answer, _) = lookup(&reader, k, Duration::from_secs(2));
        assert_eq!(answer, Lookup::Found("s1".into()), "{k} after the move");
    }
    let fresh = cluster.open();
    for i in 0..written {
        let k = format!("{{hot}}:new{i}");
        let (answer, _) = lookup(&fresh, &k, Duration::from_secs(2));
        assert_eq!(answer, Lookup::Found("s2".into()), "{k}");
    }
    let stats = reader.stats();
    assert_eq!((stats.outages, stats.up), (0, Some(true)), "{stats:?}");
    assert_eq!(writer.stats().outages, 0);
}
