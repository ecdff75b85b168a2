//! Against the real RabbitMQ on loopback: an outage of the broker during writes, and the
//! server killed with SIGKILL twenty times under load. Each test uses its own exchange
//! and queues and removes them; they run one at a time (`RABBIT`), since one stops the
//! broker.

use crate::harness::*;
use axum::http::StatusCode;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use platform::events::{self, EventSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const TENANT: &str = "0b0b0b0b-0000-4000-8000-000000000002";

/// A queue of the test's own bound to every event of `exchange`: what reached the broker.
struct Observer {
    channel: lapin::Channel,
    _conn: Connection,
    exchange: String,
    queue: String,
}

impl Observer {
    async fn new(exchange: &str) -> Observer {
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ on loopback (deploy/dev/services.sh starts it)");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange");
        let queue = format!("{exchange}.observer");
        // A quorum queue, like the engine's: a classic queue going down as the broker
        // stops drops what is routed to it while the publish is still confirmed.
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                events::quorum_queue(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        Observer {
            channel,
            _conn: conn,
            exchange: exchange.into(),
            queue,
        }
    }

    /// A fresh channel (the first one does not survive a broker outage).
    async fn reconnect(&mut self) {
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ is back");
        self.channel = conn.create_channel().await.expect("channel");
        self._conn = conn;
    }

    /// Everything in the queue: message id -> times received.
    async fn drain(&mut self) -> HashMap<String, u32> {
        self.reconnect().await;
        let mut seen = HashMap::new();
        while let Some(m) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            if let Some(id) = m.delivery.properties.message_id() {
                *seen.entry(id.as_str().to_string()).or_insert(0) += 1;
            }
        }
        seen
    }

    /// Removes the exchange and every queue the test's engine declared on it. Call it
    /// after the engine stopped: its consumers would declare their queues again.
    async fn cleanup(mut self) {
        // Consumers notice the closed pools within a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.reconnect().await;
        let mut queues = vec![self.queue.clone()];
        for s in events::builtin_subscriptions() {
            queues.push(format!("{}.{}", self.exchange, s.name));
        }
        for q in queues {
            let _ = self
                .channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// Stops the broker application; starts it again when dropped, even on panic.
struct Outage;

impl Outage {
    fn begin() -> Outage {
        let s = std::process::Command::new("rabbitmqctl")
            .arg("stop_app")
            .output()
            .expect("rabbitmqctl");
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        Outage
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .output();
    }
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_broker_outage_loses_no_write_and_no_event() {
    let _one = RABBIT.lock().await;
    let exchange = format!("test.{}", Uuid::new_v4().simple());
    let mut observer = Observer::new(&exchange).await;
    let t = Arc::new(
        TestApp::with_events(EventSettings::new(Some(amqp_url()), Some(exchange.clone()))).await,
    );
    events::spawn(&t.app);
    let tenant: Uuid = TENANT.parse().unwrap();
    let token = t.token(tenant, &["admin"]);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (t, stop, ok, failed, token) = (
            t.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            token.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let r = t
                    .post(
                        &token,
                        "/api/v1/objects/customer/records",
                        &serde_json::json!({"name": format!("Outage {i}")}),
                    )
                    .await;
                if r.status == StatusCode::CREATED {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    t.wait_until(
        "SELECT EXISTS (SELECT 1 FROM engine.inbox WHERE consumer = 'activity')",
        "the consumers to be bound",
        30,
    )
    .await;
    // A message that is no envelope at all goes to each consumer's dead letters.
    observer
        .channel
        .basic_publish(
            exchange.as_str().into(),
            "registry.customer.created".into(),
            BasicPublishOptions::default(),
            b"this is not json",
            BasicProperties::default(),
        )
        .await
        .unwrap();

    let pool = t.app.db.admin.clone();
    let before_outage = ok.load(Ordering::SeqCst);
    let outage = Outage::begin();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = ok.load(Ordering::SeqCst) - before_outage;
    let waiting = count(
        &pool,
        "SELECT count(*) FROM engine.outbox WHERE published_at IS NULL",
    )
    .await;
    drop(outage);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    t.wait_until(
        "SELECT NOT EXISTS (SELECT 1 FROM engine.outbox WHERE published_at IS NULL)",
        "the outbox to drain after the outage",
        120,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (handled, stored): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM engine.inbox WHERE consumer = 'activity'), (SELECT count(*) FROM engine.outbox)",
        )
        .fetch_one(&t.app.db.admin)
        .await
        .unwrap();
        if handled == stored {
            break;
        }
        if Instant::now() > deadline {
            let queues = std::process::Command::new("rabbitmqctl")
                .args([
                    "list_queues",
                    "name",
                    "messages",
                    "messages_unacknowledged",
                    "consumers",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            let mine: Vec<&str> = queues.lines().filter(|l| l.contains(&exchange)).collect();
            let missing: Vec<(Uuid, String, i32, Option<String>)> = sqlx::query_as(
                "SELECT o.id, o.event_type, o.publish_count, o.published_at::text FROM engine.outbox o
                 WHERE NOT EXISTS (SELECT 1 FROM engine.inbox i WHERE i.consumer = 'activity' AND i.event_id = o.id)",
            )
            .fetch_all(&t.app.db.admin)
            .await
            .unwrap();
            let dead: Vec<(String, String, String)> =
                sqlx::query_as("SELECT consumer, event_id::text, error FROM engine.dead_letters")
                    .fetch_all(&t.app.db.admin)
                    .await
                    .unwrap();
            panic!("the activity consumer handled {handled} of {stored} events; queues: {mine:?}; not handled: {missing:?}; dead letters: {dead:?}; outage began after {before_outage} writes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = count(&pool, "SELECT count(*) FROM engine.outbox").await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM engine.outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    let seen = observer.drain().await;
    let lost = ids
        .iter()
        .filter(|id| !seen.contains_key(&id.to_string()))
        .count();
    let effects = count(
        &pool,
        "SELECT coalesce(sum(events), 0)::bigint FROM engine.activity",
    )
    .await;
    let raw_dead = count(&pool, "SELECT count(*) FROM engine.dead_letters WHERE event_type = '' AND error LIKE '%expected%'").await;
    println!(
        "broker outage: writes acknowledged {} (during the 30 s outage {during}), failed {}, events stored {stored}, waiting when the broker came back {waiting}, delivered {}, lost {lost}, duplicate effects {}",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        seen.len(),
        effects - stored
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "every write succeeds without the broker"
    );
    assert!(during > 100, "writes went on during the outage: {during}");
    assert!(waiting > 0, "events waited in the outbox");
    assert_eq!(stored as u64, ok.load(Ordering::SeqCst));
    assert_eq!(lost, 0, "every stored event reached the broker");
    assert_eq!(effects, stored, "each event had its effect once");
    assert_eq!(
        raw_dead, 2,
        "the unreadable message is dead-lettered at both consumers"
    );
    if let Ok(t) = Arc::try_unwrap(t) {
        t.cleanup().await;
    }
    observer.cleanup().await;
}

/// A running `platform serve` process, killed when dropped.
struct Server {
    child: std::process::Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drops the test's database when dropped, even on panic.
struct DbGuard(String);

impl Drop for DbGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}

fn start_server(port: u16, db_url: &str, exchange: &str, log: &std::path::Path) -> Server {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_platform"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--metadata",
        ])
        .arg(shipped_metadata())
        .env("DATABASE_URL", db_url)
        .env("JWT_SECRET", SECRET)
        .env("AMQP_URL", amqp_url())
        .env("AMQP_EXCHANGE", exchange)
        .env("DB_MAX_CONNECTIONS", "8")
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("platform binary");
    Server { child }
}

/// Waits for /ready; fails with the server's log when it exits or takes a minute.
async fn wait_ready(
    client: &reqwest::Client,
    port: u16,
    server: &mut Server,
    log: &std::path::Path,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the server exited ({status}) while starting:\n{}", tail());
        }
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server did not become ready:\n{}",
            tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_under_load_loses_nothing_and_duplicates_no_effect() {
    let _one = RABBIT.lock().await;
    const KILLS: usize = 20;
    let exchange = format!("test.{}", Uuid::new_v4().simple());
    let mut observer = Observer::new(&exchange).await;
    let db_name = format!("platform_test_{}", Uuid::new_v4().simple());
    let db_url = format!("{}/{db_name}", server_url());
    let db_guard = DbGuard(db_name.clone());
    let dir = TempDir::new("platform-crash");
    let log = dir.join("server.log");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let tenant: Uuid = TENANT.parse().unwrap();
    let token = platform::auth::JwtKeys::new(SECRET).issue(
        tenant,
        "crash-test",
        &["admin".to_string()],
        chrono::Duration::hours(1),
    );

    let mut server = start_server(port, &db_url, &exchange, &log);
    wait_ready(&client, port, &mut server, &log).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<tokio::sync::Mutex<Vec<String>>> = Arc::default();
    let unacked = Arc::new(AtomicU64::new(0));
    let mut writers = vec![];
    for w in 0..4 {
        let (client, stop, acked, unacked, token) = (
            client.clone(),
            stop.clone(),
            acked.clone(),
            unacked.clone(),
            token.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let r = client
                    .post(format!(
                        "http://127.0.0.1:{port}/api/v1/objects/customer/records"
                    ))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(serde_json::json!({"name": format!("Crash {w}-{i}")}).to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        let body: serde_json::Value =
                            serde_json::from_str(&r.text().await.unwrap_or_default())
                                .unwrap_or_default();
                        match body["id"].as_str() {
                            Some(id) => acked.lock().await.push(id.to_string()),
                            None => {
                                unacked.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    _ => {
                        unacked.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    // Kill at uneven moments: 300 to 1300 ms after each start.
    let mut rng = Uuid::new_v4().as_u128();
    for _ in 0..KILLS {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let ms = 300 + (rng >> 64) as u64 % 1000;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        server = start_server(port, &db_url, &exchange, &log);
        wait_ready(&client, port, &mut server, &log).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let settled: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM engine.outbox WHERE published_at IS NULL)
                AND NOT EXISTS (SELECT 1 FROM engine.audit_unsealed)
                AND (SELECT count(*) FROM engine.inbox WHERE consumer = 'activity') = (SELECT count(*) FROM engine.outbox)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events did not settle; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let acked = acked.lock().await.clone();
    let committed = count(&pool, "SELECT count(*) FROM registry.customer").await;
    let present: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registry.customer WHERE id = ANY($1::uuid[])")
            .bind(&acked)
            .fetch_one(&pool)
            .await
            .unwrap();
    let not_one_audit = count(
        &pool,
        "SELECT count(*) FROM registry.customer c
         WHERE (SELECT count(*) FROM engine.audit_events a WHERE a.record_id = c.id AND a.action = 'created') <> 1",
    )
    .await;
    let orphan_audit = count(
        &pool,
        "SELECT count(*) FROM engine.audit_events a WHERE a.object = 'customer'
         AND NOT EXISTS (SELECT 1 FROM registry.customer c WHERE c.id = a.record_id)",
    )
    .await;
    let stored = count(&pool, "SELECT count(*) FROM engine.outbox").await;
    let audits = count(&pool, "SELECT count(*) FROM engine.audit_events").await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM engine.outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    let seen = observer.drain().await;
    let lost = ids
        .iter()
        .filter(|id| !seen.contains_key(&id.to_string()))
        .count();
    let redelivered: u32 = seen.values().map(|n| n - 1).sum();
    let effects = count(
        &pool,
        "SELECT coalesce(sum(events), 0)::bigint FROM engine.activity",
    )
    .await;
    let report = platform::audit::verify(&pool, None).await.unwrap();
    println!(
        "crash test: {KILLS} SIGKILLs; writes acknowledged {}, unacknowledged attempts {}, records committed {committed}, events stored {stored}, delivered {}, re-published after a crash {redelivered}, lost {lost}, duplicate effects {}, audit links {}",
        acked.len(),
        unacked.load(Ordering::SeqCst),
        seen.len(),
        effects - stored,
        report.links
    );
    assert!(acked.len() > 100, "the load ran: {}", acked.len());
    assert_eq!(
        present as usize,
        acked.len(),
        "every acknowledged write is there"
    );
    assert_eq!(
        not_one_audit, 0,
        "every committed record has exactly one create event"
    );
    assert_eq!(orphan_audit, 0, "no audit event without its record");
    assert_eq!(stored, audits, "one envelope per audit event");
    assert_eq!(stored, committed, "one envelope per record");
    assert_eq!(lost, 0, "every stored event reached the broker");
    assert_eq!(
        effects, stored,
        "no consumer effect happened twice, none is missing"
    );
    assert_eq!(report.first_break, None);
    assert_eq!(report.links as i64, audits);

    drop(server);
    pool.close().await;
    observer.cleanup().await;
    drop(db_guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_publish_each_event_once() {
    let _one = RABBIT.lock().await;
    let exchange = format!("test.{}", Uuid::new_v4().simple());
    let mut observer = Observer::new(&exchange).await;
    let settings = EventSettings::new(Some(amqp_url()), Some(exchange.clone()));
    let a = TestApp::with_events(settings.clone()).await;
    let b = TestApp::with_events_on(Some(&a.db_name), settings).await;
    events::spawn(&a.app);
    events::spawn(&b.app);
    let tenant: Uuid = TENANT.parse().unwrap();
    let token = a.token(tenant, &["admin"]);
    // Both processes write; each wakes its own relay, both poll the shared outbox.
    for i in 0..150 {
        let t = if i % 2 == 0 { &a } else { &b };
        customer(t, &token, &format!("Twin {i}")).await;
    }
    a.wait_until(
        "SELECT NOT EXISTS (SELECT 1 FROM engine.outbox WHERE published_at IS NULL)",
        "the outbox to drain",
        60,
    )
    .await;
    a.wait_until(
        "SELECT (SELECT count(*) FROM engine.inbox WHERE consumer = 'activity') = 150",
        "the consumers to catch up",
        60,
    )
    .await;
    let pool = a.app.db.admin.clone();
    let twice = count(
        &pool,
        "SELECT count(*) FROM engine.outbox WHERE publish_count <> 1",
    )
    .await;
    let seen = observer.drain().await;
    let repeats = seen.values().filter(|n| **n > 1).count();
    assert_eq!(seen.len(), 150, "every event reached the broker");
    assert_eq!(twice, 0, "no event was published by both relays");
    assert_eq!(repeats, 0, "the broker received each event once");
    assert_eq!(
        count(&pool, "SELECT sum(events)::bigint FROM engine.activity").await,
        150
    );
    b.cleanup().await;
    a.cleanup().await;
    observer.cleanup().await;
}
