//! The Redis store on a Sentinel group, with real processes on loopback: a master, a
//! replica and three sentinels (`redis-server --sentinel`, what the `redis-sentinel`
//! package runs; `down-after-milliseconds 1000`). The master is killed under load: the
//! sentinels promote the replica, the store follows it without a restart, no pin the
//! replica had is lost, and the writes made meanwhile reach the new master.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, lookup, wait_connected, wait_for, RedisServer};
use tether_store::{Access, Backend, Lookup, Options, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);
const GROUP: &str = "tethermaster";

/// A `redis-server --sentinel` on a free port, killed on drop.
struct Sentinel {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Sentinel {
    fn start(master_port: u16) -> Sentinel {
        let port = free_port();
        let conf = std::env::temp_dir().join(format!(
            "tether-sentinel-{}-{port}.conf",
            std::process::id()
        ));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
             sentinel monitor {GROUP} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {GROUP} 1000\n\
             sentinel failover-timeout {GROUP} 10000\n\
             sentinel parallel-syncs {GROUP} 1\n",
            dir = std::env::temp_dir().display()
        );
        std::fs::write(&conf, text).expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let s = Sentinel { child, port, conf };
        wait_for("a sentinel answering PING", Duration::from_secs(10), || {
            s.query::<String>(&mut redis::cmd("PING")).is_some()
        });
        s
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Option<T> {
        let client = redis::Client::open(format!("redis://{}", self.addr())).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        con.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        cmd.query(&mut con).ok()
    }

    fn master_port(&self) -> Option<u16> {
        let addr: Option<(String, u16)> = self.query(
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(GROUP),
        )?;
        addr.map(|(_, port)| port)
    }

    fn count(&self, what: &str) -> usize {
        self.query::<Vec<redis::Value>>(redis::cmd("SENTINEL").arg(what).arg(GROUP))
            .map_or(0, |v| v.len())
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// One `INFO` field; "" while the server does not answer (a failover drops and refuses
/// connections for a moment: the callers poll until the field says what they wait for).
fn info_field(server: &RedisServer, section: &str, field: &str) -> String {
    let Ok(client) = redis::Client::open(server.url()) else {
        return String::new();
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = con.set_read_timeout(Some(Duration::from_secs(2)));
    let Ok(info) = redis::cmd("INFO").arg(section).query::<String>(&mut con) else {
        return String::new();
    };
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `DBSIZE`; 0 while the server does not answer (see `info_field`).
fn keys(server: &RedisServer) -> usize {
    let Ok(client) = redis::Client::open(server.url()) else {
        return 0;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return 0;
    };
    let _ = con.set_read_timeout(Some(Duration::from_secs(2)));
    redis::cmd("DBSIZE").query::<usize>(&mut con).unwrap_or(0)
}

/// A master, its replica in sync, and three sentinels that know them and each other.
fn group() -> Option<(RedisServer, RedisServer, Vec<Sentinel>)> {
    let master = RedisServer::start()?;
    let replica = RedisServer::start_with(
        free_port(),
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    wait_for("the replica in sync", Duration::from_secs(10), || {
        info_field(&replica, "replication", "master_link_status") == "up"
    });
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port)).collect();
    // Each sentinel knows the replica and the two other sentinels before a failover.
    wait_for(
        "the sentinels to know each other and the replica",
        Duration::from_secs(20),
        || {
            sentinels
                .iter()
                .all(|s| s.count("sentinels") == 2 && s.count("replicas") == 1)
        },
    );
    Some((master, replica, sentinels))
}

fn backend(sentinels: &[Sentinel]) -> Backend {
    Backend::Sentinel {
        sentinels: sentinels.iter().map(Sentinel::addr).collect(),
        master: GROUP.to_string(),
        db: 0,
        sentinel_password: None,
        access: Access::default(),
    }
}

#[test]
fn failover_under_load_loses_no_replicated_pin() {
    let Some((mut master, replica, sentinels)) = group() else {
        return;
    };
    let replica_port = replica.port;
    let backend = backend(&sentinels);
    let store = RedisStore::open_backend(&backend, &Options::default()).expect("open");
    wait_connected(&store);

    // Pins written to the master and replicated.
    for i in 0..300 {
        store.put(&format!("before:{i}"), &format!("s{}", i % 5), MINUTE);
    }
    wait_for("300 pins on the replica", Duration::from_secs(10), || {
        keys(&replica) == 300
    });
    assert_eq!(replica.get("tether:before:299").as_deref(), Some("s4"));

    // Under load: the master dies while pins keep coming.
    master.kill();
    let killed = Instant::now();
    let mut during = 0;
    let promoted = loop {
        store.put(&format!("during:{during}"), "s9", MINUTE);
        during += 1;
        if sentinels
            .iter()
            .filter(|s| s.master_port() == Some(replica_port))
            .count()
            >= 2
        {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no promotion within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(during > 10, "load during the failover: {during} puts");
    eprintln!("promoted after {promoted:?}, {during} pins put meanwhile");

    // The store follows the new master without a restart: every pin is there.
    wait_for(
        "the store to write to the promoted replica",
        Duration::from_secs(20),
        || keys(&replica) == 300 + during,
    );
    assert_eq!(info_field(&replica, "replication", "role"), "master");
    assert_eq!(replica.get("tether:during:0").as_deref(), Some("s9"));
    for i in 0..300 {
        assert_eq!(
            replica.get(&format!("tether:before:{i}")),
            Some(format!("s{}", i % 5)),
            "pin before:{i} lost"
        );
    }
    let stats = store.stats();
    assert_eq!(stats.up, Some(true), "{stats:?}");
    assert_eq!(stats.dropped_writes, 0, "{stats:?}");

    // Writes continue, and an instance started after the failover finds the pins.
    store.put("after", "s1", MINUTE);
    wait_for("a write after the failover", Duration::from_secs(5), || {
        replica.get("tether:after").as_deref() == Some("s1")
    });
    let fresh = RedisStore::open_backend(&backend, &Options::default()).expect("open");
    wait_connected(&fresh);
    for key in ["before:7", "during:0", "after"] {
        let (answer, _) = lookup(&fresh, key, Duration::from_secs(2));
        assert!(matches!(answer, Lookup::Found(_)), "{key}: {answer:?}");
    }
    let (answer, _) = lookup(&fresh, "never", Duration::from_secs(2));
    assert_eq!(answer, Lookup::Missing);
}

#[test]
fn unknown_master_name_is_an_outage_not_a_panic() {
    let Some(master) = RedisServer::start() else {
        return;
    };
    let sentinel = Sentinel::start(master.port);
    let backend = Backend::Sentinel {
        sentinels: vec![sentinel.addr()],
        master: "nosuchgroup".to_string(),
        db: 0,
        sentinel_password: None,
        access: Access::default(),
    };
    let store = RedisStore::open_backend(&backend, &Options::default()).expect("open");
    wait_for("an outage", Duration::from_secs(5), || {
        store.stats().outages >= 1
    });
    let (answer, took) = lookup(&store, "k", Duration::from_secs(2));
    assert_eq!(answer, Lookup::Down);
    assert!(took < Duration::from_millis(600), "{took:?}");
}

/// `SENTINEL FAILOVER`: nothing dies; the replica is promoted and the old master demoted
/// (its clients are disconnected, and it answers `READONLY` to writes from then on). The
/// store follows to the new master; pins replicated before and pins put once the switch
/// is over all end up there, with none dropped.
#[test]
fn graceful_failover_is_followed() {
    let Some((master, replica, sentinels)) = group() else {
        return;
    };
    let store = RedisStore::open_backend(&backend(&sentinels), &Options::default()).expect("open");
    wait_connected(&store);
    for i in 0..100 {
        store.put(&format!("before:{i}"), "s1", MINUTE);
    }
    wait_for("100 pins on the replica", Duration::from_secs(10), || {
        keys(&replica) == 100
    });

    let _: String = sentinels[0]
        .query(redis::cmd("SENTINEL").arg("FAILOVER").arg(GROUP))
        .expect("SENTINEL FAILOVER");
    // Pins keep coming while the roles switch; some of them may land on the old master
    // between the promotion and its demotion and be lost with its data, as Redis's
    // asynchronous replication allows.
    let mut during = 0;
    wait_for("the roles switched", Duration::from_secs(30), || {
        store.put(&format!("during:{during}"), "s2", MINUTE);
        during += 1;
        info_field(&replica, "replication", "role") == "master"
            && info_field(&master, "replication", "role") == "slave"
            && info_field(&master, "replication", "master_link_status") == "up"
            && sentinels
                .iter()
                .all(|s| s.master_port() == Some(replica.port))
    });
    for i in 0..100 {
        store.put(&format!("after:{i}"), "s3", MINUTE);
    }
    wait_for(
        "the pins put after the switch on the new master",
        Duration::from_secs(20),
        || (0..100).all(|i| replica.get(&format!("tether:after:{i}")).is_some()),
    );
    for i in 0..100 {
        assert_eq!(
            replica.get(&format!("tether:before:{i}")).as_deref(),
            Some("s1"),
            "before:{i}"
        );
    }
    // The demoted master holds only what it replicates from the new one.
    wait_for(
        "the demoted master replicating",
        Duration::from_secs(10),
        || master.get("tether:after:99").as_deref() == Some("s3"),
    );
    let stats = store.stats();
    assert_eq!(
        (stats.up, stats.dropped_writes),
        (Some(true), 0),
        "{stats:?}"
    );
}
