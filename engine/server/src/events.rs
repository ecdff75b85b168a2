//! Events after commit: the outbox relay (to a RabbitMQ topic exchange with publisher
//! confirms, or dispatched in-process when no broker is configured), consumers with an
//! inbox and a dead-letter table, replay and projection rebuilds.
//!
//! Every write transaction stores its event envelope in `engine.outbox` (see
//! `records::record_event`). The relay takes unpublished rows with `FOR UPDATE SKIP
//! LOCKED`, so several processes never publish one event at the same time, publishes
//! them, waits for the broker's confirms and only then marks them published, in the same
//! transaction that locked them. A crash between publish and mark publishes again:
//! delivery is at least once, and each consumer's inbox (`engine.inbox`, written in the
//! handler's transaction) makes the effect happen once.

use crate::app::App;
use crate::db::{tenant_tx, Db};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;
use uuid::Uuid;

/// A boxed future, for handlers stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Events taken from the outbox per relay round.
const BATCH: i64 = 200;

/// Where events go: the broker named by `AMQP_URL`, or this process.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// `amqp://user:pass@host:port/vhost`; None dispatches in-process.
    pub amqp_url: Option<String>,
    /// The topic exchange events are published to.
    pub exchange: String,
    /// Let webhooks reach loopback, private and link-local addresses (development and
    /// tests; off in production, where a tenant could otherwise reach internal services).
    pub allow_private_webhooks: bool,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings::new(None, None)
    }
}

impl EventSettings {
    pub fn new(amqp_url: Option<String>, exchange: Option<String>) -> EventSettings {
        EventSettings {
            amqp_url: amqp_url.filter(|u| !u.is_empty()),
            exchange: exchange
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "platform.events".into()),
            allow_private_webhooks: false,
        }
    }
}

/// The event envelope (DESIGN.md): the routing key is its `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant: Uuid,
    pub object: String,
    pub record_id: Uuid,
    pub record_version: i64,
    pub occurred_at: String,
    #[serde(default)]
    pub actor: Value,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Envelope> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// What a consumer does with an event, inside a transaction of the event's tenant (the
/// runtime role, under row-level security). An error rolls the transaction back; the
/// event is tried again, up to the subscription's bound, then dead-lettered.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Clears what the handler built, for every tenant, before a rebuild from the stored
    /// events. Runs as the database owner. Default: nothing to clear.
    fn reset<'a>(&'a self, _conn: &'a mut PgConnection) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// A named consumer bound to a routing pattern (`*` one word, `#` any number).
#[derive(Clone)]
pub struct Subscription {
    pub name: String,
    pub pattern: String,
    pub max_attempts: u32,
    pub handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl Subscription {
    pub fn new(name: &str, pattern: &str, handler: impl Handler) -> Subscription {
        Subscription {
            name: name.into(),
            pattern: pattern.into(),
            max_attempts: 5,
            handler: Arc::new(handler),
        }
    }

    pub fn max_attempts(mut self, n: u32) -> Subscription {
        self.max_attempts = n.max(1);
        self
    }
}

/// Whether an AMQP topic pattern matches a routing key.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
            Some((&w, rest)) => match k.split_first() {
                Some((&kw, krest)) => (w == "*" || w == kw) && go(rest, krest),
                None => false,
            },
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

/// The same pattern as a PostgreSQL regular expression over `event_type`.
pub fn topic_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    for (i, w) in pattern.split('.').enumerate() {
        let sep = if i == 0 { "" } else { "\\." };
        match w {
            "#" => out.push_str(if i == 0 { "(.*)" } else { "(\\..*)?" }),
            "*" => {
                out.push_str(sep);
                out.push_str("[^.]+");
            }
            w => {
                out.push_str(sep);
                for c in w.chars() {
                    if !c.is_alphanumeric() && c != '_' {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
    out.push('$');
    out
}

/// The events machinery of one process: settings, subscriptions, and a wake-up for the
/// relay when this process commits a write.
pub struct Events {
    pub settings: EventSettings,
    subs: std::sync::RwLock<Vec<Subscription>>,
    wake: tokio::sync::Notify,
    pub(crate) http: reqwest::Client,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Events {
    pub fn new(settings: EventSettings) -> Events {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // Redirects could lead to an address the checks below never saw.
            .redirect(reqwest::redirect::Policy::none());
        if !settings.allow_private_webhooks {
            http = http.dns_resolver(Arc::new(crate::webhooks::PublicOnly));
        }
        let http = http
            .user_agent(concat!("platform-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Events {
            settings,
            subs: std::sync::RwLock::new(builtin_subscriptions()),
            wake: tokio::sync::Notify::new(),
            http,
        }
    }

    /// Tells the relay that an event was just committed (kept as a permit when the
    /// relay is busy, so its next wait returns at once).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.subs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn subscription(&self, name: &str) -> Option<Subscription> {
        self.subscriptions().into_iter().find(|s| s.name == name)
    }

    /// Adds a consumer; call before [`spawn`] so the broker queue is declared for it.
    pub fn subscribe(&self, sub: Subscription) {
        let mut subs = self.subs.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| s.name != sub.name);
        subs.push(sub);
    }
}

/// The consumers every engine runs.
pub fn builtin_subscriptions() -> Vec<Subscription> {
    vec![
        Subscription::new("activity", "#", Activity),
        Subscription::new("webhooks", "#", crate::webhooks::Fanout),
    ]
}

/// The built-in projection: events per tenant, object and type (`engine.activity`).
pub struct Activity;

impl Handler for Activity {
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO engine.activity (tenant_id, object, event_type, events, last_event_at)
                 VALUES ($1, $2, $3, 1, now())
                 ON CONFLICT (tenant_id, object, event_type)
                 DO UPDATE SET events = activity.events + 1, last_event_at = now()",
            )
            .bind(event.tenant)
            .bind(&event.object)
            .bind(&event.kind)
            .execute(conn)
            .await?;
            Ok(())
        })
    }

    fn reset<'a>(&'a self, conn: &'a mut PgConnection) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM engine.activity")
                .execute(conn)
                .await?;
            Ok(())
        })
    }
}

/// What became of one event at one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler ran and its transaction committed.
    Done,
    /// The inbox already had the event: nothing was done again.
    Duplicate,
    /// The handler failed every try; the event is in `engine.dead_letters`.
    DeadLettered,
}

/// Runs `sub` on `event` once (the inbox decides), retrying a failing handler with
/// backoff up to the subscription's bound, then dead-lettering it with the error. An
/// `Err` is an infrastructure failure (the database is unreachable): nothing was
/// recorded and the caller should try again later.
pub async fn process(db: &Db, sub: &Subscription, event: &Envelope) -> anyhow::Result<Outcome> {
    let mut last_error = String::new();
    for attempt in 1..=sub.max_attempts {
        let mut tx = tenant_tx(&db.app, event.tenant).await?;
        let fresh = sqlx::query(
            "INSERT INTO engine.inbox (consumer, event_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&sub.name)
        .bind(event.id)
        .bind(event.tenant)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        match sub.handler.handle(&mut tx, event).await {
            Ok(()) => {
                tx.commit().await?;
                return Ok(Outcome::Done);
            }
            Err(e) => {
                let _ = tx.rollback().await;
                last_error = format!("{e:#}");
                tracing::warn!(consumer = %sub.name, event = %event.id, attempt, error = %last_error, "consumer failed");
                if attempt < sub.max_attempts {
                    tokio::time::sleep(Duration::from_millis(25 << attempt.min(8))).await;
                }
            }
        }
    }
    dead_letter(db, &sub.name, event, &last_error, sub.max_attempts).await?;
    Ok(Outcome::DeadLettered)
}

async fn dead_letter(
    db: &Db,
    consumer: &str,
    event: &Envelope,
    error: &str,
    attempts: u32,
) -> anyhow::Result<()> {
    tracing::error!(consumer, event = %event.id, kind = %event.kind, error, "event dead-lettered");
    sqlx::query(
        "INSERT INTO engine.dead_letters (id, consumer, event_id, tenant_id, event_type, envelope, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (consumer, event_id) DO UPDATE
         SET error = EXCLUDED.error, attempts = dead_letters.attempts + EXCLUDED.attempts, resolved_at = NULL, created_at = now()",
    )
    .bind(Uuid::now_v7())
    .bind(consumer)
    .bind(event.id)
    .bind(event.tenant)
    .bind(&event.kind)
    .bind(sqlx::types::Json(event))
    .bind(error)
    .bind(attempts as i32)
    .execute(&db.admin)
    .await?;
    Ok(())
}

/// A message that is not an envelope at all: kept as a dead letter with the parse error
/// (under the nil tenant, visible to operators only).
async fn dead_letter_raw(db: &Db, consumer: &str, data: &[u8], error: &str) -> anyhow::Result<()> {
    tracing::error!(consumer, error, "unreadable message dead-lettered");
    let raw = String::from_utf8_lossy(data).to_string();
    sqlx::query(
        "INSERT INTO engine.dead_letters (id, consumer, event_id, tenant_id, event_type, envelope, error, attempts)
         VALUES ($1, $2, $1, $3, '', $4, $5, 1)",
    )
    .bind(Uuid::now_v7())
    .bind(consumer)
    .bind(Uuid::nil())
    .bind(sqlx::types::Json(serde_json::json!({ "raw": raw })))
    .bind(error)
    .execute(&db.admin)
    .await?;
    Ok(())
}

/// Runs a dead letter's consumer on its event again. Resolved when it now has its effect.
pub async fn retry_dead_letter(
    app: &App,
    tenant: Option<Uuid>,
    id: Uuid,
) -> anyhow::Result<Option<Outcome>> {
    let row: Option<(String, Value, Uuid)> = sqlx::query_as(
        "SELECT consumer, envelope, tenant_id FROM engine.dead_letters WHERE id = $1 AND resolved_at IS NULL",
    )
    .bind(id)
    .fetch_optional(&app.db.admin)
    .await?;
    let Some((consumer, envelope, owner)) = row else {
        return Ok(None);
    };
    if tenant.is_some_and(|t| t != owner) {
        return Ok(None);
    }
    let event: Envelope = serde_json::from_value(envelope).map_err(|e| {
        anyhow::anyhow!("the dead letter is not an event envelope ({e}); it cannot be retried")
    })?;
    let sub = app
        .events
        .subscription(&consumer)
        .ok_or_else(|| anyhow::anyhow!("no consumer named {consumer} runs in this process"))?;
    let outcome = process(&app.db, &sub, &event).await?;
    if outcome != Outcome::DeadLettered {
        sqlx::query("UPDATE engine.dead_letters SET resolved_at = now() WHERE id = $1")
            .bind(id)
            .execute(&app.db.admin)
            .await?;
    }
    Ok(Some(outcome))
}

/// Marks stored events since `since` (matching `pattern`, for `tenant`) unpublished, so
/// the relays publish them again; consumers' inboxes make that harmless. Returns how
/// many events were queued.
pub async fn replay(
    db: &Db,
    since: chrono::DateTime<chrono::Utc>,
    pattern: Option<&str>,
    tenant: Option<Uuid>,
) -> anyhow::Result<u64> {
    let regex = pattern.map(topic_regex).unwrap_or_else(|| ".*".into());
    let n = sqlx::query(
        "UPDATE engine.outbox SET published_at = NULL
         WHERE created_at >= $1 AND event_type ~ $2 AND ($3::uuid IS NULL OR tenant_id = $3) AND published_at IS NOT NULL",
    )
    .bind(since)
    .bind(regex)
    .bind(tenant)
    .execute(&db.admin)
    .await?
    .rows_affected();
    Ok(n)
}

/// Rebuilds a consumer's projection from the stored events: clears it (the handler's
/// `reset`) and its inbox in one transaction, then runs it over every stored event that
/// matches its pattern, oldest first. Returns (events seen, handled).
pub async fn rebuild(db: &Db, sub: &Subscription) -> anyhow::Result<(u64, u64)> {
    let mut tx = db.admin.begin().await?;
    sub.handler.reset(&mut tx).await?;
    sqlx::query("DELETE FROM engine.inbox WHERE consumer = $1")
        .bind(&sub.name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let regex = topic_regex(&sub.pattern);
    let (mut after, mut seen, mut done) = (0i64, 0u64, 0u64);
    loop {
        let rows: Vec<(i64, sqlx::types::Json<Envelope>)> = sqlx::query_as(
            "SELECT seq, envelope FROM engine.outbox WHERE seq > $1 AND event_type ~ $2 ORDER BY seq LIMIT 500",
        )
        .bind(after)
        .bind(&regex)
        .fetch_all(&db.admin)
        .await?;
        if rows.is_empty() {
            return Ok((seen, done));
        }
        for (seq, env) in rows {
            after = seq;
            seen += 1;
            if process(db, sub, &env.0).await? == Outcome::Done {
                done += 1;
            }
        }
    }
}

/// Starts the event workers of `app`: the relay (broker or in-process), one broker
/// consumer per subscription when a broker is configured, the audit sealer and the
/// webhook sender. They end when the app's pools are closed.
pub fn spawn(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(relay(weak.clone()));
    tokio::spawn(crate::audit::sealer(weak.clone()));
    tokio::spawn(crate::webhooks::sender(weak.clone()));
    if app.events.settings.amqp_url.is_some() {
        for sub in app.events.subscriptions() {
            tokio::spawn(consume(weak.clone(), sub));
        }
    }
}

fn alive(app: &Weak<App>) -> Option<Arc<App>> {
    app.upgrade().filter(|a| !a.db.admin.is_closed())
}

/// A broker connection with a confirming channel and the exchange declared.
struct Broker {
    conn: Connection,
    channel: lapin::Channel,
}

impl Broker {
    fn healthy(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }
}

/// How long any one exchange with the broker may take. A broker that accepts the TCP
/// connection but never answers (starting up, blocked by an alarm, a dead peer) must
/// not hang a relay or a consumer for good: the operation fails and is retried.
const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// `f`, or an error after [`BROKER_TIMEOUT`].
async fn bounded<T, E: Into<anyhow::Error>>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(BROKER_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => anyhow::bail!("the broker did not answer {what} within {BROKER_TIMEOUT:?}"),
    }
}

async fn connect(settings: &EventSettings, confirm: bool) -> anyhow::Result<Broker> {
    bounded("the connection", connect_unbounded(settings, confirm)).await
}

async fn connect_unbounded(settings: &EventSettings, confirm: bool) -> anyhow::Result<Broker> {
    let url = settings
        .amqp_url
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no AMQP_URL"))?;
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    if confirm {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(Broker { conn, channel })
}

/// The relay loop: publish (or dispatch) what is pending, then wait for a local commit
/// or a quarter second (other processes' commits), backing off while the broker or the
/// database is away.
async fn relay(app: Weak<App>) {
    let mut broker: Option<Broker> = None;
    let mut failures: u32 = 0;
    loop {
        let Some(a) = alive(&app) else { return };
        let result = if a.events.settings.amqp_url.is_some() {
            publish_batch(&a, &mut broker).await
        } else {
            dispatch_batch(&a).await
        };
        match result {
            Ok(n) => {
                if failures > 0 {
                    tracing::info!("event relay recovered");
                }
                failures = 0;
                if n as i64 >= BATCH {
                    continue;
                }
                // Holds the app for at most a quarter second.
                let _ = tokio::time::timeout(Duration::from_millis(250), a.events.wake.notified())
                    .await;
            }
            Err(e) => {
                broker = None;
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %format!("{e:#}"), failures, "event relay cannot publish; events wait in the outbox");
                }
                drop(a);
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
            }
        }
    }
}

type Pending = Vec<(Uuid, String, String)>;

async fn take_pending(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> anyhow::Result<Pending> {
    Ok(sqlx::query_as(
        "SELECT id, event_type, envelope::text FROM engine.outbox
         WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut **tx)
    .await?)
}

async fn mark_published(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ids: &[Uuid],
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE engine.outbox SET published_at = now(), publish_count = publish_count + 1, last_error = NULL WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One round to the broker: lock pending rows, publish each persistent with its id,
/// wait for every confirm, mark the confirmed ones, commit.
async fn publish_batch(app: &App, broker: &mut Option<Broker>) -> anyhow::Result<usize> {
    // Connect first, so no row stays locked while a connection attempt hangs; then make
    // sure every consumer's queue exists before anything is published.
    if !broker.as_ref().is_some_and(Broker::healthy) {
        let b = connect(&app.events.settings, true).await?;
        for sub in app.events.subscriptions() {
            bounded(
                "a queue declaration",
                declare_queue(&b.channel, &app.events.settings, &sub),
            )
            .await?;
        }
        *broker = Some(b);
    }
    let Some(b) = broker.as_ref() else {
        return Ok(0);
    };
    let mut tx = app.db.admin.begin().await?;
    let rows = take_pending(&mut tx).await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let exchange = app.events.settings.exchange.as_str();
    let mut confirms = Vec::with_capacity(rows.len());
    for (id, kind, body) in &rows {
        let props = BasicProperties::default()
            .with_message_id(id.to_string().into())
            .with_content_type("application/json".into())
            .with_type(kind.as_str().into())
            .with_delivery_mode(2);
        let confirm = bounded(
            "a publish",
            b.channel.basic_publish(
                exchange.into(),
                kind.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            ),
        )
        .await?;
        confirms.push((*id, confirm));
    }
    let mut acked = Vec::with_capacity(confirms.len());
    let mut nacked = 0;
    for (id, confirm) in confirms {
        match bounded("a publisher confirm", confirm).await? {
            Confirmation::Ack(_) => acked.push(id),
            Confirmation::Nack(_) | Confirmation::NotRequested => nacked += 1,
        }
    }
    mark_published(&mut tx, &acked).await?;
    tx.commit().await?;
    if nacked > 0 {
        anyhow::bail!("the broker refused {nacked} event(s); they stay in the outbox");
    }
    Ok(rows.len())
}

/// One round in-process: lock pending rows, run every matching local consumer on each
/// (inbox, retries, dead letters as with the broker), mark them dispatched, commit.
async fn dispatch_batch(app: &App) -> anyhow::Result<usize> {
    let mut tx = app.db.admin.begin().await?;
    let rows = take_pending(&mut tx).await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let subs = app.events.subscriptions();
    let mut done = Vec::with_capacity(rows.len());
    for (id, kind, body) in &rows {
        match Envelope::parse(body.as_bytes()) {
            Ok(event) => {
                for sub in subs.iter().filter(|s| topic_matches(&s.pattern, kind)) {
                    process(&app.db, sub, &event).await?;
                }
            }
            Err(e) => {
                for sub in subs.iter().filter(|s| topic_matches(&s.pattern, kind)) {
                    dead_letter_raw(&app.db, &sub.name, body.as_bytes(), &e.to_string()).await?;
                }
            }
        }
        done.push(*id);
    }
    mark_published(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// The broker queue of a consumer: durable, named after the exchange and the consumer.
pub fn queue_name(settings: &EventSettings, consumer: &str) -> String {
    format!("{}.{}", settings.exchange, consumer)
}

/// The arguments of a quorum queue: the broker confirms a publish only once every
/// quorum queue it routes to has stored it.
pub fn quorum_queue() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    args
}

/// Declares a consumer's queue and binds it with its pattern (idempotent). The relay does
/// this for every subscription before it publishes, so no event is published before the
/// queues that should get it exist: a topic exchange drops what matches no queue.
async fn declare_queue(
    channel: &lapin::Channel,
    settings: &EventSettings,
    sub: &Subscription,
) -> lapin::Result<()> {
    let queue = queue_name(settings, &sub.name);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum_queue(),
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            settings.exchange.as_str().into(),
            sub.pattern.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// One consumer on the broker, reconnecting while the app lives.
async fn consume(app: Weak<App>, sub: Subscription) {
    let mut failures: u32 = 0;
    loop {
        let Some(a) = alive(&app) else { return };
        let settings = a.events.settings.clone();
        drop(a);
        match consume_once(&app, &settings, &sub).await {
            Ok(()) => return,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(consumer = %sub.name, error = %format!("{e:#}"), "consumer lost the broker; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
            }
        }
    }
}

async fn consume_once(
    app: &Weak<App>,
    settings: &EventSettings,
    sub: &Subscription,
) -> anyhow::Result<()> {
    let b = connect(settings, false).await?;
    let queue = queue_name(settings, &sub.name);
    let mut consumer = bounded("the consumer's set-up", async {
        declare_queue(&b.channel, settings, sub).await?;
        b.channel.basic_qos(32, BasicQosOptions::default()).await?;
        b.channel
            .basic_consume(
                queue.as_str().into(),
                format!("{}-{}", sub.name, Uuid::new_v4().simple()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    })
    .await?;
    tracing::info!(consumer = %sub.name, %queue, pattern = %sub.pattern, "consuming");
    let mut idle_since = std::time::Instant::now();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await;
        let Some(a) = alive(app) else { return Ok(()) };
        let delivery = match next {
            // A lost connection does not always end the stream: look.
            Err(_) if !b.healthy() => anyhow::bail!("the broker connection is lost"),
            Err(_) if idle_since.elapsed() < Duration::from_secs(10) => continue,
            Err(_) => {
                // Idle for a while: are messages waiting that this channel does not get?
                let q = bounded(
                    "a queue check",
                    b.channel.queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    ),
                )
                .await?;
                if q.message_count() > 0 {
                    anyhow::bail!(
                        "{} message(s) wait in {queue} but none are delivered; reconnecting",
                        q.message_count()
                    );
                }
                idle_since = std::time::Instant::now();
                continue;
            }
            Ok(None) => anyhow::bail!("the broker closed the consumer"),
            Ok(Some(d)) => d?,
        };
        idle_since = std::time::Instant::now();
        match Envelope::parse(&delivery.data) {
            Ok(event) => match process(&a.db, sub, &event).await {
                Ok(_) => {
                    bounded("an ack", delivery.ack(BasicAckOptions::default())).await?;
                }
                Err(e) => {
                    // The database is away: give the message back and slow down.
                    tracing::warn!(consumer = %sub.name, error = %format!("{e:#}"), "cannot process an event now; requeued");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    bounded(
                        "a nack",
                        delivery.nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        }),
                    )
                    .await?;
                }
            },
            Err(e) => {
                dead_letter_raw(&a.db, &sub.name, &delivery.data, &e.to_string()).await?;
                bounded("an ack", delivery.ack(BasicAckOptions::default())).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_like_rabbitmq() {
        assert!(topic_matches("#", "offers.offer.created"));
        assert!(topic_matches("offers.#", "offers.offer.created"));
        assert!(topic_matches("offers.*.created", "offers.offer.created"));
        assert!(!topic_matches("offers.*.created", "offers.offer.updated"));
        assert!(!topic_matches("offers.*", "offers.offer.created"));
        assert!(topic_matches("#.created", "registry.customer.created"));
        assert!(topic_matches("offers.offer.#", "offers.offer"));
        assert!(!topic_matches("registry.#", "offers.offer.created"));
    }

    #[test]
    fn topic_regexes_agree_with_matching() {
        let keys = [
            "offers.offer.created",
            "offers.offer.accepted",
            "registry.customer.created",
            "offers.offer_line.updated",
        ];
        for pattern in [
            "#",
            "offers.#",
            "*.*.created",
            "offers.offer.*",
            "#.created",
            "registry.customer.created",
        ] {
            let re = regex::Regex::new(&topic_regex(pattern)).unwrap();
            for k in keys {
                assert_eq!(
                    re.is_match(k),
                    topic_matches(pattern, k),
                    "{pattern} vs {k}"
                );
            }
        }
    }
}

// ---- HTTP: stored events and dead letters of the caller's tenant ----

mod api {
    use super::*;
    use crate::auth::Principal;
    use crate::error::{ApiError, ApiResult};
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::json;

    pub fn routes() -> Router<Arc<App>> {
        Router::new()
            .route("/events", get(list_events))
            .route("/events/dead-letters", get(list_dead_letters))
            .route("/events/dead-letters/{id}/retry", post(retry))
    }

    fn authorise(p: &Principal) -> ApiResult<()> {
        p.require_any(&["admin", "tenant_admin", "auditor"], "reading events")
    }

    /// Stored events of the tenant, newest first: `?type=PATTERN&before=SEQ&limit=N`.
    async fn list_events(
        State(app): State<Arc<App>>,
        p: Principal,
        crate::http::Q(pairs): crate::http::Q<Vec<(String, String)>>,
    ) -> ApiResult<Json<Value>> {
        authorise(&p)?;
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let limit: i64 = match get("limit") {
            None => 50,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| {
                    ApiError::validation(vec![platform_metadata::Issue::new(
                        "limit",
                        "range",
                        "must be a whole number from 1 to 500",
                        json!(v),
                    )])
                })?,
        };
        let before: Option<i64> = match get("before") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| {
                ApiError::validation(vec![platform_metadata::Issue::new(
                    "before",
                    "format",
                    "must be the seq of an event (a whole number)",
                    json!(v),
                )])
            })?),
        };
        let regex = get("type").map(topic_regex).unwrap_or_else(|| ".*".into());
        let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
        let rows: Vec<(
            i64,
            sqlx::types::Json<Value>,
            Option<chrono::DateTime<chrono::Utc>>,
        )> = sqlx::query_as(
            "SELECT seq, envelope, published_at FROM engine.outbox
                 WHERE ($1::bigint IS NULL OR seq < $1) AND event_type ~ $2
                 ORDER BY seq DESC LIMIT $3",
        )
        .bind(before)
        .bind(regex)
        .bind(limit + 1)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let has_more = rows.len() as i64 > limit;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next = if has_more {
            rows.last().map(|r| r.0)
        } else {
            None
        };
        let data: Vec<Value> = rows
            .into_iter()
            .map(|(seq, env, published)| json!({"seq": seq, "published_at": published, "event": env.0}))
            .collect();
        Ok(Json(
            json!({"data": data, "has_more": has_more, "next_before": next}),
        ))
    }

    async fn list_dead_letters(
        State(app): State<Arc<App>>,
        p: Principal,
    ) -> ApiResult<Json<Value>> {
        authorise(&p)?;
        let mut tx = tenant_tx(&app.db.app, p.tenant).await?;
        type Row = (
            Uuid,
            String,
            Uuid,
            String,
            String,
            i32,
            chrono::DateTime<chrono::Utc>,
            Option<chrono::DateTime<chrono::Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, consumer, event_id, event_type, error, attempts, created_at, resolved_at
             FROM engine.dead_letters ORDER BY created_at DESC LIMIT 200",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let data: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                json!({"id": r.0, "consumer": r.1, "event_id": r.2, "event_type": r.3, "error": r.4,
                            "attempts": r.5, "created_at": r.6, "resolved_at": r.7})
            })
            .collect();
        Ok(Json(json!({"data": data})))
    }

    async fn retry(
        State(app): State<Arc<App>>,
        p: Principal,
        Path(id): Path<String>,
    ) -> ApiResult<Json<Value>> {
        p.require_any(&["admin", "tenant_admin"], "retrying dead letters")?;
        let id = Uuid::parse_str(&id)
            .map_err(|_| ApiError::not_found(format!("no dead letter with id {id}")))?;
        let outcome = retry_dead_letter(&app, Some(p.tenant), id)
            .await
            .map_err(|e| ApiError::conflict("not_retried", format!("{e:#}")))?
            .ok_or_else(|| {
                ApiError::not_found(format!("no unresolved dead letter with id {id}"))
            })?;
        let status = match outcome {
            Outcome::Done => "done",
            Outcome::Duplicate => "already_done",
            Outcome::DeadLettered => "failed_again",
        };
        Ok(Json(json!({"id": id, "outcome": status})))
    }
}

pub use api::routes;
