//! PostgreSQL backend, for several servers sharing one database.
//!
//! - Schema: versioned migrations in `schema_migrations`, applied at open inside one
//!   transaction holding `pg_advisory_xact_lock`, so servers starting together don't race.
//! - Reads: a small pool of connections; each [`Store::read`] is one
//!   `READ ONLY, REPEATABLE READ` transaction, so it sees one snapshot.
//! - Writes: [`Store::submit`] queues the job for a few writer threads, each with its own
//!   connection; a job runs in its own READ COMMITTED transaction and is acknowledged only
//!   after `COMMIT` returned. Quota and duplicate checks serialize on
//!   [`Tx::lock_group`] (`SELECT ... FOR UPDATE`). A job that hit a serialization failure
//!   or a deadlock is rolled back and run again.
//! - Unique violations are [`StoreError::Conflict`]. Inserts use `ON CONFLICT DO NOTHING`,
//!   so (as with SQLite) a conflicting insert fails alone and leaves the transaction usable.
//!
//! The driver is `tokio-postgres` on a private one-thread runtime that only does the
//! socket I/O; callers wait on their own thread (with a tiny parking executor), so every
//! method is safe to call from plain threads and from inside the server's async handlers
//! alike (where `tokio::runtime::Runtime::block_on`, and so the sync `postgres` crate,
//! would panic).

use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use palisade_model::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use crate::{ClientTokenRecord, Store, StoreError, StoreResult, Tx, WriteJob};

/// Versioned migrations; index + 1 is the schema version. Never edit a released entry.
/// 1-3 mirror SQLite's; 4 is the shared nonce table (SQLite servers keep nonces in memory).
const MIGRATIONS: &[&str] = &[
    // 1: accounts, keys, VPCs, groups, rules, idempotency tokens.
    r#"
    CREATE TABLE accounts (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE vpcs (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        cidr_block TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX vpcs_owner ON vpcs(account_id, region_id);
    CREATE TABLE security_groups (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        vpc_id TEXT REFERENCES vpcs(id),
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        group_type TEXT NOT NULL,
        inner_access_policy TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX security_groups_owner ON security_groups(account_id, region_id);
    CREATE INDEX security_groups_vpc ON security_groups(vpc_id);
    CREATE TABLE permissions (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
        direction TEXT NOT NULL,
        ip_protocol TEXT NOT NULL,
        port_range TEXT NOT NULL,
        source_port_range TEXT,
        nic_type TEXT NOT NULL,
        policy TEXT NOT NULL,
        priority INTEGER NOT NULL,
        peer_cidr TEXT,
        peer_group_id TEXT,
        peer_owner_id BIGINT,
        local_cidr TEXT,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL,
        identity TEXT NOT NULL,
        -- The duplicate check holds even if two writers raced past the service's own check.
        UNIQUE (group_id, identity)
    );
    CREATE INDEX permissions_group ON permissions(group_id);
    CREATE INDEX permissions_peer_group ON permissions(peer_group_id);
    CREATE TABLE client_tokens (
        account_id BIGINT NOT NULL,
        token TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        response TEXT NOT NULL,
        PRIMARY KEY (account_id, token)
    );
    "#,
    // 2: instances, network interfaces and their group memberships.
    r#"
    CREATE TABLE instances (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX instances_owner ON instances(account_id, region_id);
    CREATE TABLE network_interfaces (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        vpc_id TEXT,
        vswitch_id TEXT NOT NULL,
        instance_id TEXT REFERENCES instances(id),
        name TEXT NOT NULL,
        private_ip TEXT NOT NULL,
        public_ip TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX network_interfaces_owner ON network_interfaces(account_id, region_id);
    CREATE INDEX network_interfaces_instance ON network_interfaces(instance_id);
    CREATE INDEX network_interfaces_ip ON network_interfaces(region_id, private_ip);
    CREATE TABLE nic_security_groups (
        nic_id TEXT NOT NULL REFERENCES network_interfaces(id) ON DELETE CASCADE,
        group_id TEXT NOT NULL REFERENCES security_groups(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (nic_id, group_id)
    );
    CREATE INDEX nic_security_groups_group ON nic_security_groups(group_id);
    "#,
    // 3: the change revision agents follow.
    r#"
    CREATE TABLE revision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value BIGINT NOT NULL
    );
    INSERT INTO revision (id, value) VALUES (1, 0);
    "#,
    // 4: request nonces seen by any server sharing the database.
    r#"
    CREATE TABLE nonces (
        access_key_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (access_key_id, nonce)
    );
    CREATE INDEX nonces_expiry ON nonces(expires_at);
    "#,
];

/// `pg_advisory_xact_lock` keys: "palisade" and "palisadf" in ASCII.
const MIGRATION_LOCK: i64 = 0x7061_6c69_7361_6465;
const ADMIN_LOCK: i64 = 0x7061_6c69_7361_6466;

/// Writer threads (each with its own connection): how many jobs commit at once.
const WRITERS: usize = 4;
/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;
/// How often a job that hit a serialization failure or deadlock is run again.
const MAX_RETRIES: u32 = 8;
/// Expired nonces are deleted at most this often (per server).
const NONCE_SWEEP_SECS: u64 = 60;

// ---------------------------------------------------------------------------------------
// Waiting for the driver's futures on the calling thread.

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `f` to completion, parking this thread in between. The driver's client-side
/// futures only talk to the connection task over channels, so they need no runtime here.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------------------
// Errors.

type PgError = tokio_postgres::Error;

fn map_err(e: &PgError) -> StoreError {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(match db.constraint() {
                Some(c) => format!("{} ({c})", db.message()),
                None => db.message().to_string(),
            })
        }
        Some(db) => {
            StoreError::Backend(format!("{} (SQLSTATE {})", db.message(), db.code().code()))
        }
        None => StoreError::Backend(e.to_string()),
    }
}

fn is_retryable(code: Option<&SqlState>) -> bool {
    matches!(code, Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

// ---------------------------------------------------------------------------------------
// Connections.

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Set when the connection failed in a way that leaves it unusable or in doubt.
    broken: bool,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.broken && !self.client.is_closed()
    }

    fn note(&mut self, e: &PgError) {
        if e.is_closed() || e.as_db_error().is_none() {
            self.broken = true;
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), PgError> {
        let r = block_on(self.client.batch_execute(sql));
        if let Err(e) = &r {
            self.note(e);
        }
        r
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, PgError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = block_on(self.client.prepare(sql))?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        let r = match self.statement(sql) {
            Ok(st) => block_on(self.client.query(&st, params)),
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            self.note(e);
        }
        r
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        let r = match self.statement(sql) {
            Ok(st) => block_on(self.client.execute(&st, params)),
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            self.note(e);
        }
        r
    }

    /// Ends whatever transaction is open; a connection that can't is dropped by its owner.
    fn rollback(&mut self) {
        if self.batch("ROLLBACK").is_err() {
            self.broken = true;
        }
    }
}

/// The private runtime that drives the connections' sockets. Shut down without waiting,
/// so dropping the store is safe anywhere (also inside another runtime).
struct Io(Option<tokio::runtime::Runtime>);

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

struct Shared {
    io: Io,
    config: Config,
    readers: Mutex<Vec<Conn>>,
    started: Instant,
    /// Seconds since `started` of the last expired-nonce sweep.
    last_sweep: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A new connection. The handshake runs on the private runtime; this thread waits on
    /// a plain channel, so it never polls a runtime's own futures.
    fn connect(&self) -> StoreResult<Conn> {
        let rt = self.io.0.as_ref().ok_or(StoreError::Closed)?;
        let config = self.config.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        rt.spawn(async move {
            match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        // Ends when the client is dropped or the server goes away; the
                        // client then reports itself closed.
                        let _ = connection.await;
                    });
                    let _ = tx.send(Ok(client));
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        match rx.recv() {
            Ok(Ok(client)) => Ok(Conn {
                client,
                statements: HashMap::new(),
                broken: false,
            }),
            Ok(Err(e)) => Err(StoreError::Backend(format!(
                "cannot connect to PostgreSQL: {e}"
            ))),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// A connection for reads and nonces. These never write anything that must survive a
    /// crash (nonces only matter for minutes), so their commits don't wait for the WAL flush.
    fn reader(&self) -> StoreResult<Conn> {
        if let Some(c) = lock(&self.readers).pop() {
            return Ok(c);
        }
        self.connect_reader()
    }

    fn connect_reader(&self) -> StoreResult<Conn> {
        let mut c = self.connect()?;
        c.batch("SET synchronous_commit = off")
            .map_err(|e| map_err(&e))?;
        Ok(c)
    }

    fn give_back(&self, conn: Conn) {
        if conn.usable() {
            let mut pool = lock(&self.readers);
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
    }
}

fn migrate(conn: &mut Conn) -> StoreResult<()> {
    let err = |e: PgError| map_err(&e);
    conn.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )"
    ))
    .map_err(err)?;
    let result = (|| {
        let rows = conn
            .query(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(err)?;
        let current: i32 = get(&rows[0], 0)?;
        if current as usize > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "database schema version {current} is newer than this binary ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            conn.batch(sql).map_err(err)?;
            conn.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .map_err(err)?;
        }
        conn.batch("COMMIT").map_err(err)
    })();
    if result.is_err() {
        conn.rollback();
    }
    result
}

// ---------------------------------------------------------------------------------------
// The store.

/// The PostgreSQL store. See the module documentation.
pub struct PgStore {
    shared: Arc<Shared>,
    writer: Mutex<mpsc::Sender<Box<dyn WriteJob>>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/dbname[?options]` or
    /// `host=... dbname=...`), migrates the schema and starts the writer threads.
    /// TLS is not supported: use a local socket, a loopback address or a private network.
    pub fn open(url: &str) -> StoreResult<PgStore> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("bad database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("palisade");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("palisade-pg-io")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the I/O runtime: {e}")))?;
        let shared = Arc::new(Shared {
            io: Io(Some(rt)),
            config,
            readers: Mutex::new(Vec::new()),
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
        });

        let mut conn = shared.connect()?;
        migrate(&mut conn)?;
        drop(conn);

        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..WRITERS {
            let (shared, rx) = (shared.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("palisade-pg-writer-{i}"))
                .spawn(move || writer_loop(&shared, &rx))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        Ok(PgStore {
            shared,
            writer: Mutex::new(tx),
        })
    }

    /// A one-off synchronous write on its own connection, for the command line (account
    /// and key admin) and first-start bootstrap. These serialize across servers on an
    /// advisory lock, as SQLite's `BEGIN IMMEDIATE` does, so two servers bootstrapping one
    /// empty database don't both create the default account.
    pub fn write_now<T>(&self, f: impl FnOnce(&mut dyn Tx) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.shared.connect()?;
        conn.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({ADMIN_LOCK})"
        ))
        .map_err(|e| map_err(&e))?;
        let mut tx = PgTx::new(&mut conn, false);
        let out = f(&mut tx);
        let failure = tx.failure.take();
        match (out, failure) {
            (Ok(v), None) => {
                conn.batch("COMMIT").map_err(|e| map_err(&e))?;
                Ok(v)
            }
            (Ok(_), Some(failure)) => {
                conn.rollback();
                Err(failure.error())
            }
            (Err(e), _) => {
                conn.rollback();
                Err(e)
            }
        }
    }

    /// Records `nonce` for `access_key_id` for `ttl_secs` (by the database's clock): true
    /// when it is fresh, false when any server sharing the database saw it and it has not
    /// expired yet. Expired rows are deleted now and then.
    pub fn use_nonce(&self, access_key_id: &str, nonce: &str, ttl_secs: u64) -> StoreResult<bool> {
        let mut conn = self.shared.reader()?;
        let ttl = ttl_secs as f64;
        let result = conn
            .query(
                "INSERT INTO nonces (access_key_id, nonce, expires_at)
                 VALUES ($1, $2, now() + $3::float8 * interval '1 second')
                 ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
                 WHERE nonces.expires_at < now()
                 RETURNING 1",
                &[&access_key_id, &nonce, &ttl],
            )
            .map(|rows| !rows.is_empty())
            .map_err(|e| map_err(&e));
        if result.is_ok() {
            self.sweep_nonces(&mut conn);
        }
        self.shared.give_back(conn);
        result
    }

    fn sweep_nonces(&self, conn: &mut Conn) {
        // Offset by one period so the first call sweeps (`last_sweep` starts at 0).
        let now = self.shared.started.elapsed().as_secs() + NONCE_SWEEP_SECS;
        let last = self.shared.last_sweep.load(Ordering::Relaxed);
        if now < last + NONCE_SWEEP_SECS
            || self
                .shared
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Best effort: the next sweep catches what this one missed.
        let _ = conn.execute("DELETE FROM nonces WHERE expires_at < now()", &[]);
    }
}

fn writer_loop(shared: &Shared, rx: &Mutex<mpsc::Receiver<Box<dyn WriteJob>>>) {
    let mut conn: Option<Conn> = None;
    loop {
        let job = match lock(rx).recv() {
            Ok(job) => job,
            Err(_) => return, // the store was dropped
        };
        let mut job = job;
        let result = run_job(shared, &mut conn, &mut job);
        job.finish(result);
    }
}

/// Runs the job in its own transaction, again after a serialization failure or deadlock.
/// `Ok(())` once COMMIT returned (or the job chose to roll back, as with SQLite).
fn run_job(
    shared: &Shared,
    slot: &mut Option<Conn>,
    job: &mut Box<dyn WriteJob>,
) -> StoreResult<()> {
    let mut attempt = 0;
    let mut reconnected = false;
    loop {
        if !slot.as_ref().is_some_and(Conn::usable) {
            *slot = Some(shared.connect()?);
            reconnected = true;
        }
        let conn = slot.as_mut().expect("connected above");
        if let Err(e) = conn.batch("BEGIN") {
            let err = map_err(&e);
            *slot = None;
            if reconnected {
                return Err(err);
            }
            // The idle connection died (e.g. the server restarted): once more on a new one.
            continue;
        }
        let mut tx = PgTx::new(conn, false);
        let ran = catch_unwind(AssertUnwindSafe(|| job.run(&mut tx)));
        let failure = tx.failure.take();
        let outcome = match ran {
            Err(_) => {
                conn.rollback();
                Err(StoreError::Backend("the write job panicked".into()))
            }
            Ok(_) if failure.as_ref().is_some_and(Failure::retryable) && attempt < MAX_RETRIES => {
                conn.rollback();
                attempt += 1;
                backoff(attempt);
                continue;
            }
            Ok(Ok(true)) => match failure {
                // PostgreSQL would turn this COMMIT into a ROLLBACK: say so.
                Some(f) => {
                    conn.rollback();
                    Err(f.error())
                }
                None => match conn.batch("COMMIT") {
                    Ok(()) => Ok(()),
                    Err(e) if is_retryable(e.code()) && attempt < MAX_RETRIES => {
                        attempt += 1;
                        backoff(attempt);
                        continue;
                    }
                    Err(e) => {
                        // The outcome is unknown if the connection broke: never reuse it.
                        conn.broken = true;
                        Err(map_err(&e))
                    }
                },
            },
            // The job refused (a validation error): nothing to keep.
            Ok(Ok(false)) => {
                conn.rollback();
                Ok(())
            }
            Ok(Err(e)) => {
                conn.rollback();
                Err(e)
            }
        };
        if !conn.usable() {
            *slot = None;
        }
        return outcome;
    }
}

fn backoff(attempt: u32) {
    // Spread the retries of jobs that collided: 2-4 ms, 4-8 ms, ... at most ~128 ms.
    let base = 1u64 << attempt.min(6);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(base + noise % base));
}

impl Store for PgStore {
    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> StoreResult<()>) -> StoreResult<()> {
        const BEGIN: &str = "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ";
        let mut conn = self.shared.reader()?;
        if conn.batch(BEGIN).is_err() {
            // A pooled connection may have died while idle: once more on a new one.
            drop(conn);
            conn = self.shared.connect_reader()?;
            conn.batch(BEGIN).map_err(|e| map_err(&e))?;
        }
        let result = f(&mut PgTx::new(&mut conn, true));
        if conn.batch("COMMIT").is_err() {
            conn.broken = true;
        }
        self.shared.give_back(conn);
        result
    }

    fn submit(&self, job: Box<dyn WriteJob>) {
        let sent = lock(&self.writer).send(job);
        if let Err(mpsc::SendError(job)) = sent {
            job.finish(Err(StoreError::Closed));
        }
    }

    fn write_sync(&self, f: &mut dyn FnMut(&mut dyn Tx) -> StoreResult<()>) -> StoreResult<()> {
        self.write_now(f)
    }

    fn use_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        ttl_secs: u64,
    ) -> StoreResult<Option<bool>> {
        PgStore::use_nonce(self, access_key_id, nonce, ttl_secs).map(Some)
    }
}

// ---------------------------------------------------------------------------------------
// The transaction.

/// The first database error of a transaction: after it PostgreSQL refuses everything
/// but a rollback.
struct Failure {
    code: Option<SqlState>,
    error: StoreError,
}

impl Failure {
    fn retryable(&self) -> bool {
        is_retryable(self.code.as_ref())
    }
    fn error(self) -> StoreError {
        match self.error {
            StoreError::Conflict(m) => StoreError::Conflict(m),
            other => StoreError::Backend(format!("transaction failed: {other}")),
        }
    }
}

struct PgTx<'a> {
    conn: &'a mut Conn,
    read_only: bool,
    failure: Option<Failure>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

fn get<'r, T: FromSql<'r>>(row: &'r Row, i: usize) -> StoreResult<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Backend(format!("column {i}: {e}")))
}

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("bad {what}: {v}"))
}

impl<'a> PgTx<'a> {
    fn new(conn: &'a mut Conn, read_only: bool) -> PgTx<'a> {
        PgTx {
            conn,
            read_only,
            failure: None,
        }
    }

    fn fail(&mut self, e: PgError) -> StoreError {
        let error = map_err(&e);
        if self.failure.is_none() {
            self.failure = Some(Failure {
                code: e.code().cloned(),
                error: match &error {
                    StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
                    other => StoreError::Backend(other.to_string()),
                },
            });
        }
        error
    }

    fn rows(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        self.conn.query(sql, params).map_err(|e| self.fail(e))
    }

    fn list<T>(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
        f: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.rows(sql, params)?.iter().map(f).collect()
    }

    fn one<T>(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
        f: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.rows(sql, params)?.first().map(f).transpose()
    }

    fn lookup(&self, sql: [&'static str; 2]) -> &'static str {
        sql[usize::from(!self.read_only)]
    }

    fn count(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<u64> {
        let rows = self.rows(sql, params)?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Backend("no row".into()))?;
        Ok(get::<i64>(row, 0)? as u64)
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<u64> {
        self.conn.execute(sql, params).map_err(|e| self.fail(e))
    }

    /// An `INSERT ... ON CONFLICT DO NOTHING`: no row means a unique key was taken.
    fn insert(&mut self, what: &str, sql: &'static str, params: Params<'_>) -> StoreResult<()> {
        if self.execute(sql, params)? == 0 {
            return Err(StoreError::Conflict(format!(
                "duplicate key value violates a unique constraint of {what}"
            )));
        }
        Ok(())
    }
}

/// A lookup of one resource by key, as `[read snapshot, write transaction]` statements.
/// A write transaction locks what it looked up (`FOR UPDATE`) until it ends, so a job that
/// checked a resource and a job that deletes or changes it serialize, as they do under
/// SQLite's single writer: e.g. a rule naming group B and the deletion of B (whose
/// reference check would otherwise miss the uncommitted rule), a new group in VPC V and
/// the deletion of V, a membership of an interface and the deletion of its instance. The
/// waiting job then reads the row as committed (or finds it gone).
macro_rules! lookup {
    ($cols:ident, $rest:literal) => {
        [
            concat!("SELECT ", $cols!(), $rest),
            concat!("SELECT ", $cols!(), $rest, " FOR UPDATE"),
        ]
    };
}

macro_rules! group_cols {
    () => {
        "id, account_id, region_id, vpc_id, name, description, group_type, inner_access_policy, created_at"
    };
}
macro_rules! perm_cols {
    () => {
        "id, group_id, direction, ip_protocol, port_range, source_port_range, nic_type, policy, priority, peer_cidr, peer_group_id, peer_owner_id, local_cidr, description, created_at"
    };
}
macro_rules! nic_cols {
    () => {
        "id, account_id, region_id, vpc_id, vswitch_id, instance_id, name, private_ip, public_ip, created_at"
    };
}
macro_rules! vpc_cols {
    () => {
        "id, account_id, region_id, cidr_block, name, description, created_at"
    };
}
macro_rules! instance_cols {
    () => {
        "id, account_id, region_id, name, created_at"
    };
}

fn row_account(r: &Row) -> StoreResult<Account> {
    Ok(Account {
        id: get::<i64>(r, 0)? as u64,
        name: get(r, 1)?,
        created_at: get(r, 2)?,
    })
}

fn row_key_account(r: &Row) -> StoreResult<(AccessKey, Account)> {
    Ok((
        AccessKey {
            id: get(r, 0)?,
            secret: get(r, 1)?,
            account_id: get::<i64>(r, 2)? as u64,
            enabled: get(r, 3)?,
            created_at: get(r, 4)?,
        },
        Account {
            id: get::<i64>(r, 5)? as u64,
            name: get(r, 6)?,
            created_at: get(r, 7)?,
        },
    ))
}

fn row_vpc(r: &Row) -> StoreResult<Vpc> {
    Ok(Vpc {
        id: get(r, 0)?,
        account_id: get::<i64>(r, 1)? as u64,
        region_id: get(r, 2)?,
        cidr_block: get(r, 3)?,
        name: get(r, 4)?,
        description: get(r, 5)?,
        created_at: get(r, 6)?,
    })
}

fn row_group(r: &Row) -> StoreResult<SecurityGroup> {
    let gt: &str = get(r, 6)?;
    let iap: &str = get(r, 7)?;
    Ok(SecurityGroup {
        id: get(r, 0)?,
        account_id: get::<i64>(r, 1)? as u64,
        region_id: get(r, 2)?,
        vpc_id: get(r, 3)?,
        name: get(r, 4)?,
        description: get(r, 5)?,
        group_type: SecurityGroupType::parse(gt).ok_or_else(|| corrupt("group type", gt))?,
        inner_access_policy: InnerAccessPolicy::parse(iap)
            .ok_or_else(|| corrupt("inner access policy", iap))?,
        created_at: get(r, 8)?,
    })
}

fn row_permission(r: &Row) -> StoreResult<Permission> {
    let dir: &str = get(r, 2)?;
    let proto: &str = get(r, 3)?;
    let pr: &str = get(r, 4)?;
    let spr: Option<&str> = get(r, 5)?;
    let nic: &str = get(r, 6)?;
    let pol: &str = get(r, 7)?;
    let peer_cidr: Option<String> = get(r, 9)?;
    let peer_group: Option<String> = get(r, 10)?;
    let owner: Option<i64> = get(r, 11)?;
    let peer = match (peer_cidr, peer_group) {
        (Some(c), _) => Peer::Cidr(c),
        (None, Some(g)) => Peer::Group {
            group_id: g,
            owner_id: owner.unwrap_or(0) as u64,
        },
        (None, None) => return Err(corrupt("peer", "none")),
    };
    Ok(Permission {
        id: get(r, 0)?,
        group_id: get(r, 1)?,
        direction: Direction::parse(dir).ok_or_else(|| corrupt("direction", dir))?,
        ip_protocol: IpProtocol::parse(proto).ok_or_else(|| corrupt("protocol", proto))?,
        port_range: pr.parse().map_err(|_| corrupt("port range", pr))?,
        source_port_range: match spr {
            Some(s) => Some(s.parse().map_err(|_| corrupt("port range", s))?),
            None => None,
        },
        nic_type: NicType::parse(nic).ok_or_else(|| corrupt("nic type", nic))?,
        policy: Policy::parse(pol).ok_or_else(|| corrupt("policy", pol))?,
        priority: get::<i32>(r, 8)? as u8,
        peer,
        local_cidr: get(r, 12)?,
        description: get(r, 13)?,
        created_at: get(r, 14)?,
    })
}

fn row_instance(r: &Row) -> StoreResult<Instance> {
    Ok(Instance {
        id: get(r, 0)?,
        account_id: get::<i64>(r, 1)? as u64,
        region_id: get(r, 2)?,
        name: get(r, 3)?,
        created_at: get(r, 4)?,
    })
}

fn row_nic(r: &Row) -> StoreResult<NetworkInterface> {
    Ok(NetworkInterface {
        id: get(r, 0)?,
        account_id: get::<i64>(r, 1)? as u64,
        region_id: get(r, 2)?,
        vpc_id: get(r, 3)?,
        vswitch_id: get(r, 4)?,
        instance_id: get(r, 5)?,
        name: get(r, 6)?,
        private_ip: get(r, 7)?,
        public_ip: get(r, 8)?,
        created_at: get(r, 9)?,
    })
}

/// The peer columns of a rule: (peer_cidr, peer_group_id, peer_owner_id).
fn peer_columns(p: &Permission) -> (Option<&str>, Option<&str>, Option<i64>) {
    match &p.peer {
        Peer::Cidr(c) => (Some(c.as_str()), None, None),
        Peer::Group { group_id, owner_id } => {
            (None, Some(group_id.as_str()), Some(*owner_id as i64))
        }
    }
}

impl Tx for PgTx<'_> {
    fn account_by_access_key(&mut self, ak: &str) -> StoreResult<Option<(AccessKey, Account)>> {
        self.one(
            "SELECT k.id, k.secret, k.account_id, k.enabled, k.created_at, a.id, a.name, a.created_at
             FROM access_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1",
            &[&ak],
            row_key_account,
        )
    }

    fn account_by_id(&mut self, id: u64) -> StoreResult<Option<Account>> {
        self.one(
            "SELECT id, name, created_at FROM accounts WHERE id = $1",
            &[&(id as i64)],
            row_account,
        )
    }

    fn account_by_name(&mut self, name: &str) -> StoreResult<Option<Account>> {
        self.one(
            "SELECT id, name, created_at FROM accounts WHERE name = $1",
            &[&name],
            row_account,
        )
    }

    fn accounts(&mut self) -> StoreResult<Vec<Account>> {
        self.list(
            "SELECT id, name, created_at FROM accounts ORDER BY id",
            &[],
            row_account,
        )
    }

    fn insert_account(&mut self, a: &Account) -> StoreResult<()> {
        self.insert(
            "accounts",
            "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&(a.id as i64), &a.name, &a.created_at],
        )
    }

    fn insert_access_key(&mut self, k: &AccessKey) -> StoreResult<()> {
        self.insert(
            "access_keys",
            "INSERT INTO access_keys (id, secret, account_id, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &k.id,
                &k.secret,
                &(k.account_id as i64),
                &k.enabled,
                &k.created_at,
            ],
        )
    }

    fn insert_vpc(&mut self, v: &Vpc) -> StoreResult<()> {
        self.insert(
            "vpcs",
            concat!(
                "INSERT INTO vpcs (",
                vpc_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
            ),
            &[
                &v.id,
                &(v.account_id as i64),
                &v.region_id,
                &v.cidr_block,
                &v.name,
                &v.description,
                &v.created_at,
            ],
        )
    }

    fn vpc(&mut self, id: &str) -> StoreResult<Option<Vpc>> {
        let sql = self.lookup(lookup!(vpc_cols, " FROM vpcs WHERE id = $1"));
        self.one(sql, &[&id], row_vpc)
    }

    fn vpcs(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<Vpc>> {
        self.list(
            concat!(
                "SELECT ",
                vpc_cols!(),
                " FROM vpcs WHERE account_id = $1 AND region_id = $2 ORDER BY seq"
            ),
            &[&(account_id as i64), &region_id],
            row_vpc,
        )
    }

    fn delete_vpc(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM vpcs WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn count_groups_in_vpc(&mut self, vpc_id: &str) -> StoreResult<u64> {
        self.count(
            "SELECT COUNT(*) FROM security_groups WHERE vpc_id = $1",
            &[&vpc_id],
        )
    }

    fn insert_group(&mut self, g: &SecurityGroup) -> StoreResult<()> {
        self.insert(
            "security_groups",
            concat!(
                "INSERT INTO security_groups (",
                group_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
            ),
            &[
                &g.id,
                &(g.account_id as i64),
                &g.region_id,
                &g.vpc_id,
                &g.name,
                &g.description,
                &g.group_type.as_str(),
                &g.inner_access_policy.as_str(),
                &g.created_at,
            ],
        )
    }

    fn group(&mut self, id: &str) -> StoreResult<Option<SecurityGroup>> {
        let sql = self.lookup(lookup!(group_cols, " FROM security_groups WHERE id = $1"));
        self.one(sql, &[&id], row_group)
    }

    fn lock_account(&mut self, account_id: u64) -> StoreResult<()> {
        if self.read_only {
            return Ok(());
        }
        // Advisory lock space 1 is accounts; released at commit or rollback.
        let key = account_id as i64;
        self.rows(
            "SELECT pg_advisory_xact_lock(1, ($1::bigint % 2147483647)::int)",
            &[&key],
        )?;
        Ok(())
    }

    fn lock_group(&mut self, id: &str) -> StoreResult<()> {
        // A read-only snapshot can't take row locks, and needs none.
        if self.read_only {
            return Ok(());
        }
        self.rows(
            "SELECT 1 FROM security_groups WHERE id = $1 FOR UPDATE",
            &[&id],
        )?;
        Ok(())
    }

    fn groups(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<SecurityGroup>> {
        self.list(
            concat!(
                "SELECT ",
                group_cols!(),
                " FROM security_groups WHERE account_id = $1 AND region_id = $2 ORDER BY seq"
            ),
            &[&(account_id as i64), &region_id],
            row_group,
        )
    }

    fn update_group(&mut self, g: &SecurityGroup) -> StoreResult<()> {
        self.execute(
            "UPDATE security_groups SET name = $2, description = $3, inner_access_policy = $4 WHERE id = $1",
            &[&g.id, &g.name, &g.description, &g.inner_access_policy.as_str()],
        )?;
        Ok(())
    }

    fn delete_group(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM permissions WHERE group_id = $1", &[&id])?;
        self.execute("DELETE FROM security_groups WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn permissions(&mut self, group_id: &str) -> StoreResult<Vec<Permission>> {
        self.list(
            concat!(
                "SELECT ",
                perm_cols!(),
                " FROM permissions WHERE group_id = $1 ORDER BY seq"
            ),
            &[&group_id],
            row_permission,
        )
    }

    fn count_permissions(&mut self, group_id: &str) -> StoreResult<u64> {
        self.count(
            "SELECT COUNT(*) FROM permissions WHERE group_id = $1",
            &[&group_id],
        )
    }

    fn permission_by_identity(
        &mut self,
        group_id: &str,
        identity: &str,
    ) -> StoreResult<Option<String>> {
        let ids: Vec<String> = self.list(
            "SELECT id FROM permissions WHERE group_id = $1 AND identity = $2",
            &[&group_id, &identity],
            |r| get(r, 0),
        )?;
        Ok(ids.into_iter().next())
    }

    fn insert_permission(&mut self, p: &Permission) -> StoreResult<()> {
        let (cidr, group, owner) = peer_columns(p);
        self.insert(
            "permissions",
            concat!(
                "INSERT INTO permissions (",
                perm_cols!(),
                ", identity) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT DO NOTHING"
            ),
            &[
                &p.id,
                &p.group_id,
                &p.direction.as_str(),
                &p.ip_protocol.as_str(),
                &p.port_range.to_string(),
                &p.source_port_range.map(|s| s.to_string()),
                &p.nic_type.as_str(),
                &p.policy.as_str(),
                &(p.priority as i32),
                &cidr,
                &group,
                &owner,
                &p.local_cidr,
                &p.description,
                &p.created_at,
                &p.identity(),
            ],
        )
    }

    fn update_permission(&mut self, p: &Permission) -> StoreResult<()> {
        let (cidr, group, owner) = peer_columns(p);
        // Refuses (rather than fails on) a change that would duplicate another rule of the
        // group, so the transaction stays usable as with SQLite; a concurrent insert that
        // slips past this still hits the unique constraint.
        let changed = self.execute(
            "UPDATE permissions SET ip_protocol = $2, port_range = $3, source_port_range = $4, nic_type = $5,
             policy = $6, priority = $7, peer_cidr = $8, peer_group_id = $9, peer_owner_id = $10,
             local_cidr = $11, description = $12, identity = $13
             WHERE id = $1 AND NOT EXISTS (
                 SELECT 1 FROM permissions o
                 WHERE o.group_id = permissions.group_id AND o.identity = $13 AND o.id <> $1)",
            &[
                &p.id,
                &p.ip_protocol.as_str(),
                &p.port_range.to_string(),
                &p.source_port_range.map(|s| s.to_string()),
                &p.nic_type.as_str(),
                &p.policy.as_str(),
                &(p.priority as i32),
                &cidr,
                &group,
                &owner,
                &p.local_cidr,
                &p.description,
                &p.identity(),
            ],
        )?;
        if changed == 0
            && !self
                .rows("SELECT 1 FROM permissions WHERE id = $1", &[&p.id])?
                .is_empty()
        {
            return Err(StoreError::Conflict(
                "duplicate key value violates unique constraint permissions_group_id_identity_key"
                    .into(),
            ));
        }
        Ok(())
    }

    fn delete_permission(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM permissions WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn referencing_groups(&mut self, group_id: &str) -> StoreResult<Vec<(String, u64)>> {
        self.list(
            "SELECT g.id, g.account_id FROM security_groups g
             WHERE g.id <> $1
               AND EXISTS (SELECT 1 FROM permissions p WHERE p.group_id = g.id AND p.peer_group_id = $1)
             ORDER BY g.seq",
            &[&group_id],
            |r| Ok((get(r, 0)?, get::<i64>(r, 1)? as u64)),
        )
    }

    fn insert_instance(&mut self, i: &Instance) -> StoreResult<()> {
        self.insert(
            "instances",
            concat!(
                "INSERT INTO instances (",
                instance_cols!(),
                ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            ),
            &[
                &i.id,
                &(i.account_id as i64),
                &i.region_id,
                &i.name,
                &i.created_at,
            ],
        )
    }

    fn instance(&mut self, id: &str) -> StoreResult<Option<Instance>> {
        let sql = self.lookup(lookup!(instance_cols, " FROM instances WHERE id = $1"));
        self.one(sql, &[&id], row_instance)
    }

    fn instances(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<Instance>> {
        self.list(
            concat!(
                "SELECT ",
                instance_cols!(),
                " FROM instances WHERE account_id = $1 AND region_id = $2 ORDER BY seq"
            ),
            &[&(account_id as i64), &region_id],
            row_instance,
        )
    }

    fn delete_instance(&mut self, id: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM nic_security_groups WHERE nic_id IN (SELECT id FROM network_interfaces WHERE instance_id = $1)",
            &[&id],
        )?;
        self.execute(
            "DELETE FROM network_interfaces WHERE instance_id = $1",
            &[&id],
        )?;
        self.execute("DELETE FROM instances WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn insert_nic(&mut self, n: &NetworkInterface) -> StoreResult<()> {
        self.insert(
            "network_interfaces",
            concat!(
                "INSERT INTO network_interfaces (",
                nic_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
            ),
            &[
                &n.id,
                &(n.account_id as i64),
                &n.region_id,
                &n.vpc_id,
                &n.vswitch_id,
                &n.instance_id,
                &n.name,
                &n.private_ip,
                &n.public_ip,
                &n.created_at,
            ],
        )
    }

    fn nic(&mut self, id: &str) -> StoreResult<Option<NetworkInterface>> {
        let sql = self.lookup(lookup!(nic_cols, " FROM network_interfaces WHERE id = $1"));
        self.one(sql, &[&id], row_nic)
    }

    fn primary_nic(&mut self, instance_id: &str) -> StoreResult<Option<NetworkInterface>> {
        let sql = self.lookup(lookup!(
            nic_cols,
            " FROM network_interfaces WHERE instance_id = $1 ORDER BY seq LIMIT 1"
        ));
        self.one(sql, &[&instance_id], row_nic)
    }

    fn nics(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<NetworkInterface>> {
        self.list(
            concat!(
                "SELECT ",
                nic_cols!(),
                " FROM network_interfaces WHERE account_id = $1 AND region_id = $2 ORDER BY seq"
            ),
            &[&(account_id as i64), &region_id],
            row_nic,
        )
    }

    fn nics_with_ip(
        &mut self,
        vpc_id: Option<&str>,
        region_id: &str,
        ip: &str,
    ) -> StoreResult<u64> {
        // NULL `vpc_id` is the classic network: compare it as a value, as SQLite's `IS` does.
        self.count(
            "SELECT COUNT(*) FROM network_interfaces
             WHERE vpc_id IS NOT DISTINCT FROM $1 AND region_id = $2 AND private_ip = $3",
            &[&vpc_id, &region_id, &ip],
        )
    }

    fn delete_nic(&mut self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM nic_security_groups WHERE nic_id = $1", &[&id])?;
        self.execute("DELETE FROM network_interfaces WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn nic_groups(&mut self, nic_id: &str) -> StoreResult<Vec<String>> {
        self.list(
            "SELECT group_id FROM nic_security_groups WHERE nic_id = $1 ORDER BY position",
            &[&nic_id],
            |r| get(r, 0),
        )
    }

    fn set_nic_groups(&mut self, nic_id: &str, groups: &[String]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM nic_security_groups WHERE nic_id = $1",
            &[&nic_id],
        )?;
        if groups.is_empty() {
            return Ok(());
        }
        let inserted = self.execute(
            "INSERT INTO nic_security_groups (nic_id, group_id, position)
             SELECT $1, g, (o - 1)::integer FROM unnest($2::text[]) WITH ORDINALITY AS t(g, o)
             ON CONFLICT DO NOTHING",
            &[&nic_id, &groups],
        )?;
        if inserted as usize != groups.len() {
            return Err(StoreError::Conflict(
                "a group is listed twice for one network interface".into(),
            ));
        }
        Ok(())
    }

    fn group_members(&mut self, group_id: &str) -> StoreResult<Vec<NetworkInterface>> {
        self.list(
            concat!(
                "SELECT ",
                nic_cols!(),
                " FROM network_interfaces WHERE id IN (SELECT nic_id FROM nic_security_groups WHERE group_id = $1) ORDER BY seq"
            ),
            &[&group_id],
            row_nic,
        )
    }

    fn revision(&mut self) -> StoreResult<u64> {
        self.count("SELECT value FROM revision WHERE id = 1", &[])
    }

    fn bump_revision(&mut self) -> StoreResult<u64> {
        self.count(
            "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
            &[],
        )
    }

    fn client_token(
        &mut self,
        account_id: u64,
        token: &str,
    ) -> StoreResult<Option<ClientTokenRecord>> {
        self.one(
            "SELECT fingerprint, response FROM client_tokens WHERE account_id = $1 AND token = $2",
            &[&(account_id as i64), &token],
            |r| {
                Ok(ClientTokenRecord {
                    fingerprint: get(r, 0)?,
                    response: get(r, 1)?,
                })
            },
        )
    }

    fn put_client_token(
        &mut self,
        account_id: u64,
        token: &str,
        rec: &ClientTokenRecord,
    ) -> StoreResult<()> {
        self.insert(
            "client_tokens",
            "INSERT INTO client_tokens (account_id, token, fingerprint, response)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[
                &(account_id as i64),
                &token,
                &rec.fingerprint,
                &rec.response,
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    //! Run against a real server: `PALISADE_TEST_PG_URL=postgres://postgres@127.0.0.1:55432/postgres`
    //! (an account that may create databases; `scripts/pg-start.sh` starts one). Each test
    //! works in a fresh database, dropped at the end. Without the variable they pass as skipped.

    use super::*;
    use std::sync::atomic::AtomicUsize;

    static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

    /// A fresh database on the test server, dropped (with its connections) on drop.
    struct TestDb {
        admin: Config,
        name: String,
        url: String,
    }

    impl TestDb {
        fn new(test: &str) -> Option<TestDb> {
            let admin_url = match std::env::var("PALISADE_TEST_PG_URL") {
                Ok(u) if !u.is_empty() => u,
                _ => {
                    eprintln!("{test}: skipped (PALISADE_TEST_PG_URL is not set)");
                    return None;
                }
            };
            let admin: Config = admin_url.parse().expect("PALISADE_TEST_PG_URL");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!(
                "palisade_store_{}_{}_{}",
                std::process::id(),
                nanos % 1_000_000_000,
                NEXT_DB.fetch_add(1, Ordering::Relaxed)
            );
            admin_exec(&admin, &format!("CREATE DATABASE {name}"));
            Some(TestDb {
                url: database_url(&admin_url, &name),
                admin,
                name,
            })
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            admin_exec(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
        }
    }

    /// `url` with its database name replaced.
    fn database_url(url: &str, db: &str) -> String {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return format!("{url} dbname={db}");
        }
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let scheme_end = base.find("://").unwrap() + 3;
        let host_part = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        format!("{host_part}/{db}{query}")
    }

    fn admin_exec(admin: &Config, sql: &str) {
        let shared = Shared {
            io: Io(Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap(),
            )),
            config: admin.clone(),
            readers: Mutex::new(Vec::new()),
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
        };
        let mut conn = shared.connect().expect("connect to PALISADE_TEST_PG_URL");
        conn.batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Submits `f` as a write job and waits for its `finish`: (commit result, what run said).
    fn submit_wait(
        store: &PgStore,
        f: impl FnMut(&mut dyn Tx) -> StoreResult<bool> + Send + 'static,
    ) -> (StoreResult<()>, Option<StoreResult<bool>>) {
        struct Job<F> {
            f: F,
            last: Option<StoreResult<bool>>,
            done: mpsc::Sender<(StoreResult<()>, Option<StoreResult<bool>>)>,
        }
        impl<F: FnMut(&mut dyn Tx) -> StoreResult<bool> + Send> WriteJob for Job<F> {
            fn run(&mut self, tx: &mut dyn Tx) -> StoreResult<bool> {
                let r = (self.f)(tx);
                self.last = Some(match &r {
                    Ok(b) => Ok(*b),
                    Err(e) => Err(StoreError::Backend(e.to_string())),
                });
                r
            }
            fn finish(self: Box<Self>, committed: StoreResult<()>) {
                let _ = self.done.send((committed, self.last));
            }
        }
        let (tx, rx) = mpsc::channel();
        store.submit(Box::new(Job {
            f,
            last: None,
            done: tx,
        }));
        rx.recv().expect("finish was called")
    }

    fn read<T>(store: &PgStore, mut f: impl FnMut(&mut dyn Tx) -> StoreResult<T>) -> T {
        let mut out = None;
        store
            .read(&mut |tx| {
                out = Some(f(tx)?);
                Ok(())
            })
            .expect("read");
        out.unwrap()
    }

    const ACCOUNT: u64 = 1234567890123456;

    fn account(id: u64, name: &str) -> Account {
        Account {
            id,
            name: name.into(),
            created_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn group(id: &str, vpc: Option<&str>) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            account_id: ACCOUNT,
            region_id: "cn-hangzhou".into(),
            vpc_id: vpc.map(str::to_string),
            name: format!("name-{id}"),
            description: "a group".into(),
            group_type: SecurityGroupType::Normal,
            inner_access_policy: InnerAccessPolicy::Accept,
            created_at: "2024-01-01T00:00:01Z".into(),
        }
    }

    fn rule(id: &str, group_id: &str, port: i32) -> Permission {
        Permission {
            id: id.into(),
            group_id: group_id.into(),
            direction: Direction::Ingress,
            ip_protocol: IpProtocol::Tcp,
            port_range: PortRange {
                from: port,
                to: port,
            },
            source_port_range: None,
            nic_type: NicType::Intranet,
            policy: Policy::Accept,
            priority: 1,
            peer: Peer::Cidr("10.0.0.0/8".into()),
            local_cidr: None,
            description: String::new(),
            created_at: "2024-01-01T00:00:02Z".into(),
        }
    }

    fn nic(id: &str, vpc: Option<&str>, instance: Option<&str>, ip: &str) -> NetworkInterface {
        NetworkInterface {
            id: id.into(),
            account_id: ACCOUNT,
            region_id: "cn-hangzhou".into(),
            vpc_id: vpc.map(str::to_string),
            vswitch_id: "vsw-1".into(),
            instance_id: instance.map(str::to_string),
            name: format!("nic-{id}"),
            private_ip: ip.into(),
            public_ip: None,
            created_at: "2024-01-01T00:00:03Z".into(),
        }
    }

    /// An account to own things.
    fn seed(store: &PgStore) {
        store
            .write_now(|tx| tx.insert_account(&account(ACCOUNT, "test@aliyun.com")))
            .unwrap();
    }

    #[test]
    fn open_fails_cleanly_without_a_server() {
        // Port 1 on loopback: refused at once.
        match PgStore::open("postgres://postgres@127.0.0.1:1/postgres") {
            Err(StoreError::Backend(m)) => assert!(m.contains("connect"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a store on port 1"),
        }
        assert!(matches!(
            PgStore::open("postgres://[bad"),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn database_url_replaces_the_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:55432/postgres", "x"),
            "postgres://postgres@127.0.0.1:55432/x"
        );
        assert_eq!(
            database_url("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h:5", "x"), "postgres://h:5/x");
        assert_eq!(database_url("host=h user=u", "x"), "host=h user=u dbname=x");
    }

    #[test]
    fn migrations_are_idempotent_and_race_free() {
        let Some(db) = TestDb::new("migrations_are_idempotent_and_race_free") else {
            return;
        };
        // Four servers starting at once on an empty database, then one more later.
        let stores: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                std::thread::spawn(move || PgStore::open(&url))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap().expect("open"))
            .collect();
        drop(stores);
        let store = PgStore::open(&db.url).expect("second open");
        let mut conn = store.shared.reader().unwrap();
        let rows = conn
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .unwrap();
        let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        let expected: Vec<i32> = (1..=MIGRATIONS.len() as i32).collect();
        assert_eq!(versions, expected);
        // The revision row was inserted once.
        let n: i64 = conn.query("SELECT COUNT(*) FROM revision", &[]).unwrap()[0].get(0);
        assert_eq!(n, 1);
        // A newer schema than this binary knows is refused.
        conn.batch("INSERT INTO schema_migrations (version) VALUES (999)")
            .unwrap();
        drop(conn);
        match PgStore::open(&db.url) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("newer"), "{m}"),
            other => panic!("expected Corrupt, got {:?}", other.err()),
        }
    }

    #[test]
    fn every_tx_method_round_trips() {
        let Some(db) = TestDb::new("every_tx_method_round_trips") else {
            return;
        };
        let store = PgStore::open(&db.url).unwrap();
        seed(&store);
        let key = AccessKey {
            id: "LTAItestkey".into(),
            secret: "s3cret".into(),
            account_id: ACCOUNT,
            enabled: true,
            created_at: "2024-01-01T00:00:00Z".into(),
        };
        let other = account(42, "other@aliyun.com");
        let vpc = Vpc {
            id: "vpc-1".into(),
            account_id: ACCOUNT,
            region_id: "cn-hangzhou".into(),
            cidr_block: "192.168.0.0/16".into(),
            name: "v".into(),
            description: "d".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
        };
        // Accounts and keys through write_now (the command line's path).
        store
            .write_now(|tx| {
                tx.insert_access_key(&key)?;
                tx.insert_account(&other)?;
                tx.insert_vpc(&vpc)
            })
            .unwrap();
        let (k, a) = read(&store, |tx| tx.account_by_access_key("LTAItestkey")).unwrap();
        assert_eq!(k, key);
        assert_eq!(a, account(ACCOUNT, "test@aliyun.com"));
        assert!(read(&store, |tx| tx.account_by_access_key("nope")).is_none());
        assert_eq!(read(&store, |tx| tx.account_by_id(42)), Some(other.clone()));
        assert_eq!(
            read(&store, |tx| tx.account_by_name("other@aliyun.com")),
            Some(other.clone())
        );
        assert_eq!(
            read(&store, |tx| tx.accounts()),
            vec![other.clone(), account(ACCOUNT, "test@aliyun.com")]
        );
        assert_eq!(read(&store, |tx| tx.vpc("vpc-1")), Some(vpc.clone()));
        assert_eq!(
            read(&store, |tx| tx.vpcs(ACCOUNT, "cn-hangzhou")),
            vec![vpc.clone()]
        );
        assert!(read(&store, |tx| tx.vpcs(ACCOUNT, "cn-beijing")).is_empty());

        // Groups: creation order, not id order; classic and VPC.
        let groups = [
            group("sg-c", None),
            group("sg-a", Some("vpc-1")),
            group("sg-b", None),
        ];
        let gs = groups.clone();
        let (r, ran) = submit_wait(&store, move |tx| {
            for g in &gs {
                tx.lock_group(&g.id)?; // before the row exists: a no-op
                tx.insert_group(g)?;
            }
            tx.bump_revision()?;
            Ok(true)
        });
        r.unwrap();
        assert!(ran.unwrap().unwrap());
        assert_eq!(read(&store, |tx| tx.revision()), 1);
        assert_eq!(
            read(&store, |tx| tx.groups(ACCOUNT, "cn-hangzhou")),
            groups.to_vec()
        );
        assert_eq!(read(&store, |tx| tx.group("sg-a")), Some(groups[1].clone()));
        assert_eq!(read(&store, |tx| tx.group("sg-x")), None);
        assert_eq!(read(&store, |tx| tx.count_groups_in_vpc("vpc-1")), 1);
        let mut renamed = groups[0].clone();
        renamed.name = "renamed".into();
        renamed.description = "new".into();
        renamed.inner_access_policy = InnerAccessPolicy::Drop;
        let g2 = renamed.clone();
        submit_wait(&store, move |tx| {
            tx.update_group(&g2)?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(read(&store, |tx| tx.group("sg-c")), Some(renamed.clone()));

        // Rules: every column, both peer kinds, creation order.
        let mut r1 = rule("sgr-2", "sg-c", 22);
        r1.source_port_range = Some(PortRange { from: 1, to: 100 });
        r1.local_cidr = Some("192.168.1.0/24".into());
        r1.priority = 100;
        r1.description = "ssh".into();
        let mut r2 = rule("sgr-1", "sg-c", -1);
        r2.port_range = PortRange::ANY;
        r2.ip_protocol = IpProtocol::All;
        r2.direction = Direction::Egress;
        r2.policy = Policy::Drop;
        r2.nic_type = NicType::Internet;
        r2.peer = Peer::Group {
            group_id: "sg-b".into(),
            owner_id: ACCOUNT,
        };
        let r3 = Permission {
            peer: Peer::Group {
                group_id: "sg-b".into(),
                owner_id: ACCOUNT,
            },
            ..rule("sgr-3", "sg-a", 80)
        };
        let r4 = Permission {
            // A rule of sg-b naming itself is not a reference from another group.
            peer: Peer::Group {
                group_id: "sg-b".into(),
                owner_id: ACCOUNT,
            },
            ..rule("sgr-4", "sg-b", 80)
        };
        let rules = [r1.clone(), r2.clone(), r3.clone(), r4.clone()];
        submit_wait(&store, move |tx| {
            for r in &rules {
                tx.lock_group(&r.group_id)?;
                tx.insert_permission(r)?;
            }
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(
            read(&store, |tx| tx.permissions("sg-c")),
            vec![r1.clone(), r2.clone()]
        );
        assert_eq!(read(&store, |tx| tx.count_permissions("sg-c")), 2);
        assert_eq!(
            read(&store, |tx| tx.referencing_groups("sg-b")),
            vec![("sg-c".to_string(), ACCOUNT), ("sg-a".to_string(), ACCOUNT)]
        );
        let mut r1b = r1.clone();
        r1b.port_range = PortRange { from: 23, to: 24 };
        r1b.priority = 5;
        r1b.peer = Peer::Cidr("0.0.0.0/0".into());
        r1b.description = "changed".into();
        let upd = r1b.clone();
        submit_wait(&store, move |tx| {
            tx.update_permission(&upd)?;
            tx.delete_permission("sgr-1")?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(read(&store, |tx| tx.permissions("sg-c")), vec![r1b.clone()]);

        // Instances, interfaces, memberships.
        let inst = Instance {
            id: "i-1".into(),
            account_id: ACCOUNT,
            region_id: "cn-hangzhou".into(),
            name: "box".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
        };
        let n_primary = nic("eni-p", Some("vpc-1"), Some("i-1"), "192.168.1.5");
        let mut n_classic = nic("eni-c", None, None, "10.1.1.1");
        n_classic.public_ip = Some("47.1.1.1".into());
        let n_other = nic("eni-o", Some("vpc-1"), None, "10.1.1.1");
        let (i2, np, nc, no) = (
            inst.clone(),
            n_primary.clone(),
            n_classic.clone(),
            n_other.clone(),
        );
        submit_wait(&store, move |tx| {
            tx.insert_instance(&i2)?;
            tx.insert_nic(&np)?;
            tx.insert_nic(&nc)?;
            tx.insert_nic(&no)?;
            tx.set_nic_groups("eni-p", &["sg-a".into(), "sg-c".into()])?;
            tx.set_nic_groups("eni-c", &["sg-c".into()])?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(read(&store, |tx| tx.instance("i-1")), Some(inst.clone()));
        assert_eq!(
            read(&store, |tx| tx.instances(ACCOUNT, "cn-hangzhou")),
            vec![inst.clone()]
        );
        assert_eq!(read(&store, |tx| tx.nic("eni-c")), Some(n_classic.clone()));
        assert_eq!(
            read(&store, |tx| tx.primary_nic("i-1")),
            Some(n_primary.clone())
        );
        assert_eq!(
            read(&store, |tx| tx.nics(ACCOUNT, "cn-hangzhou")),
            vec![n_primary.clone(), n_classic.clone(), n_other.clone()]
        );
        // NULL vpc is the classic network: one match each, not two.
        assert_eq!(
            read(&store, |tx| tx.nics_with_ip(
                None,
                "cn-hangzhou",
                "10.1.1.1"
            )),
            1
        );
        assert_eq!(
            read(&store, |tx| tx.nics_with_ip(
                Some("vpc-1"),
                "cn-hangzhou",
                "10.1.1.1"
            )),
            1
        );
        assert_eq!(
            read(&store, |tx| tx.nics_with_ip(
                Some("vpc-1"),
                "cn-beijing",
                "10.1.1.1"
            )),
            0
        );
        assert_eq!(
            read(&store, |tx| tx.nic_groups("eni-p")),
            vec!["sg-a".to_string(), "sg-c".to_string()]
        );
        assert_eq!(
            read(&store, |tx| tx.group_members("sg-c")),
            vec![n_primary.clone(), n_classic.clone()]
        );
        // Re-ordering replaces the memberships.
        submit_wait(&store, |tx| {
            tx.set_nic_groups("eni-p", &["sg-c".into(), "sg-a".into()])?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(
            read(&store, |tx| tx.nic_groups("eni-p")),
            vec!["sg-c".to_string(), "sg-a".to_string()]
        );

        // Client tokens.
        let rec = ClientTokenRecord {
            fingerprint: "fp".into(),
            response: "{\"RequestId\":\"x\"}".into(),
        };
        let r2c = rec.clone();
        submit_wait(&store, move |tx| {
            tx.put_client_token(ACCOUNT, "tok", &r2c)?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(
            read(&store, |tx| tx.client_token(ACCOUNT, "tok")),
            Some(rec.clone())
        );
        assert_eq!(read(&store, |tx| tx.client_token(42, "tok")), None);

        // Deletions.
        submit_wait(&store, |tx| {
            tx.delete_nic("eni-c")?;
            tx.delete_instance("i-1")?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(read(&store, |tx| tx.nic("eni-p")), None);
        assert_eq!(read(&store, |tx| tx.nic("eni-c")), None);
        assert_eq!(read(&store, |tx| tx.instance("i-1")), None);
        assert!(read(&store, |tx| tx.group_members("sg-c")).is_empty());
        submit_wait(&store, |tx| {
            tx.delete_group("sg-c")?;
            tx.delete_group("sg-a")?;
            tx.delete_vpc("vpc-1")?;
            Ok(true)
        })
        .0
        .unwrap();
        assert_eq!(read(&store, |tx| tx.group("sg-c")), None);
        assert!(read(&store, |tx| tx.permissions("sg-c")).is_empty());
        assert_eq!(read(&store, |tx| tx.vpc("vpc-1")), None);
        assert_eq!(
            read(&store, |tx| tx.groups(ACCOUNT, "cn-hangzhou")),
            vec![groups[2].clone()]
        );

        // A job that refuses rolls back; finish still says Ok (as with SQLite).
        let (r, ran) = submit_wait(&store, |tx| {
            tx.insert_group(&group("sg-z", None))?;
            tx.bump_revision()?;
            Ok(false)
        });
        r.unwrap();
        assert!(!ran.unwrap().unwrap());
        assert_eq!(read(&store, |tx| tx.group("sg-z")), None);
        assert_eq!(read(&store, |tx| tx.revision()), 1);
        // A job that fails learns it from finish.
        let (r, _) = submit_wait(&store, |tx| {
            tx.bump_revision()?;
            Err(StoreError::Backend("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(read(&store, |tx| tx.revision()), 1);
        // Through the Store trait too.
        let dyn_store: &dyn Store = &store;
        dyn_store
            .write_sync(&mut |tx| {
                tx.bump_revision()?;
                Ok(())
            })
            .unwrap();
        assert_eq!(read(&store, |tx| tx.revision()), 2);
    }

    #[test]
    fn a_read_sees_one_snapshot() {
        let Some(db) = TestDb::new("a_read_sees_one_snapshot") else {
            return;
        };
        let store = PgStore::open(&db.url).unwrap();
        let (before, after) = read(&store, |tx| {
            let before = tx.revision()?;
            // Another connection commits in the middle of this read.
            store.write_now(|w| w.bump_revision())?;
            Ok((before, tx.revision()?))
        });
        assert_eq!(before, after);
        assert_eq!(read(&store, |tx| tx.revision()), before + 1);
        // lock_group inside a read is a no-op, not a read-only violation.
        read(&store, |tx| tx.lock_group("sg-1"));
    }

    #[test]
    fn unique_violations_are_conflicts() {
        let Some(db) = TestDb::new("unique_violations_are_conflicts") else {
            return;
        };
        let store = PgStore::open(&db.url).unwrap();
        seed(&store);
        // Same id, same name: both are conflicts, and the transaction goes on (as SQLite).
        let err = store
            .write_now(|tx| tx.insert_account(&account(ACCOUNT, "x@y")))
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        let (r, ran) = submit_wait(&store, |tx| {
            let dup = tx.insert_account(&account(7, "test@aliyun.com"));
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            tx.insert_group(&group("sg-1", None))?;
            tx.insert_permission(&rule("sgr-1", "sg-1", 22))?;
            // The same rule under another id: (group_id, identity) is unique.
            let dup = tx.insert_permission(&rule("sgr-2", "sg-1", 22));
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            let dup = tx.insert_group(&group("sg-1", None));
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            tx.insert_permission(&rule("sgr-3", "sg-1", 23))?;
            // Changing sgr-3 into sgr-1's twin is a conflict too.
            let dup = tx.update_permission(&rule("sgr-3", "sg-1", 22));
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            let dup = tx.set_nic_groups("eni-none", &["sg-1".into(), "sg-1".into()]);
            assert!(dup.is_err());
            Ok(true)
        });
        assert!(ran.unwrap().unwrap());
        // set_nic_groups above failed on the foreign key, which aborts the transaction
        // in PostgreSQL: a job that ignores that and asks to commit is told it didn't.
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        assert_eq!(read(&store, |tx| tx.group("sg-1")), None);

        let (r, _) = submit_wait(&store, |tx| {
            tx.insert_group(&group("sg-1", None))?;
            tx.insert_permission(&rule("sgr-1", "sg-1", 22))?;
            assert!(matches!(
                tx.insert_permission(&rule("sgr-2", "sg-1", 22)),
                Err(StoreError::Conflict(_))
            ));
            tx.put_client_token(
                ACCOUNT,
                "t",
                &ClientTokenRecord {
                    fingerprint: "a".into(),
                    response: "b".into(),
                },
            )?;
            assert!(matches!(
                tx.put_client_token(
                    ACCOUNT,
                    "t",
                    &ClientTokenRecord {
                        fingerprint: "c".into(),
                        response: "d".into(),
                    }
                ),
                Err(StoreError::Conflict(_))
            ));
            Ok(true)
        });
        r.unwrap();
        assert_eq!(read(&store, |tx| tx.count_permissions("sg-1")), 1);

        // A real 23505 from the server (not the ON CONFLICT path) maps to Conflict too.
        let mut conn = store.shared.reader().unwrap();
        conn.batch("BEGIN").unwrap();
        let mut tx = PgTx::new(&mut conn, false);
        let e = tx
            .execute(
                "INSERT INTO accounts (id, name, created_at) VALUES (1, 'test@aliyun.com', '')",
                &[],
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        assert!(tx.failure.is_some());
        conn.rollback();
    }

    #[test]
    fn quota_checks_serialize_on_the_group_lock() {
        let Some(db) = TestDb::new("quota_checks_serialize_on_the_group_lock") else {
            return;
        };
        const QUOTA: u64 = 10;
        // Two "servers" on one database, eight threads, 24 attempts for 10 places.
        let a = Arc::new(PgStore::open(&db.url).unwrap());
        let b = Arc::new(PgStore::open(&db.url).unwrap());
        seed(&a);
        a.write_now(|tx| tx.insert_group(&group("sg-q", None)))
            .unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = if t % 2 == 0 { a.clone() } else { b.clone() };
                let next = next.clone();
                std::thread::spawn(move || {
                    let mut added = 0;
                    for _ in 0..3 {
                        let n = next.fetch_add(1, Ordering::Relaxed) as i32;
                        let (r, ran) = submit_wait(&store, move |tx| {
                            tx.lock_group("sg-q")?;
                            if tx.count_permissions("sg-q")? >= QUOTA {
                                return Ok(false);
                            }
                            // Widen the window between the check and the insert.
                            std::thread::sleep(Duration::from_millis(3));
                            tx.insert_permission(&rule(&format!("sgr-{n}"), "sg-q", 1000 + n))?;
                            tx.bump_revision()?;
                            Ok(true)
                        });
                        r.unwrap();
                        if ran.unwrap().unwrap() {
                            added += 1;
                        }
                    }
                    added
                })
            })
            .collect();
        let added: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(added, QUOTA);
        assert_eq!(read(&a, |tx| tx.count_permissions("sg-q")), QUOTA);
        assert_eq!(read(&b, |tx| tx.revision()), QUOTA);
    }

    #[test]
    fn deadlocked_jobs_are_run_again() {
        let Some(db) = TestDb::new("deadlocked_jobs_are_run_again") else {
            return;
        };
        let store = PgStore::open(&db.url).unwrap();
        seed(&store);
        store
            .write_now(|tx| {
                tx.insert_group(&group("sg-1", None))?;
                tx.insert_group(&group("sg-2", None))
            })
            .unwrap();
        // Two jobs lock the groups in opposite orders, meeting in the middle on their
        // first run: PostgreSQL kills one as a deadlock victim, which must be run again.
        let meet = Arc::new(std::sync::Barrier::new(2));
        let runs = Arc::new(AtomicUsize::new(0));
        let store = Arc::new(store);
        let jobs: Vec<_> = [("sg-1", "sg-2"), ("sg-2", "sg-1")]
            .into_iter()
            .enumerate()
            .map(|(i, (first, second))| {
                let (store, meet, runs) = (store.clone(), meet.clone(), runs.clone());
                std::thread::spawn(move || {
                    let mut first_run = true;
                    submit_wait(&store, move |tx| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        tx.lock_group(first)?;
                        if std::mem::take(&mut first_run) {
                            meet.wait();
                        }
                        tx.lock_group(second)?;
                        tx.insert_permission(&rule(&format!("sgr-{i}"), first, 22))?;
                        Ok(true)
                    })
                })
            })
            .collect();
        for j in jobs {
            let (r, ran) = j.join().unwrap();
            r.unwrap();
            assert!(ran.unwrap().unwrap());
        }
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(read(&store, |tx| tx.count_permissions("sg-1")), 1);
        assert_eq!(read(&store, |tx| tx.count_permissions("sg-2")), 1);
    }

    #[test]
    fn nonces_are_single_use_across_servers() {
        let Some(db) = TestDb::new("nonces_are_single_use_across_servers") else {
            return;
        };
        let a = PgStore::open(&db.url).unwrap();
        let b = PgStore::open(&db.url).unwrap();
        assert!(a.use_nonce("ak1", "n1", 600).unwrap());
        assert!(!a.use_nonce("ak1", "n1", 600).unwrap());
        assert!(!b.use_nonce("ak1", "n1", 600).unwrap());
        assert!(b.use_nonce("ak2", "n1", 600).unwrap());
        assert!(b.use_nonce("ak1", "n2", 600).unwrap());
        // Through the Store trait: Some, since the database decides.
        let dyn_b: &dyn Store = &b;
        assert_eq!(dyn_b.use_nonce("ak1", "n2", 600).unwrap(), Some(false));
        assert_eq!(dyn_b.use_nonce("ak1", "n3", 600).unwrap(), Some(true));
        // An expired nonce is fresh again, and the sweep removes expired rows.
        assert!(a.use_nonce("ak3", "old", 0).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.use_nonce("ak3", "old", 0).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        let c = PgStore::open(&db.url).unwrap();
        assert!(c.use_nonce("ak4", "x", 600).unwrap()); // a new store sweeps on first use
        let mut conn = c.shared.reader().unwrap();
        let left: i64 = conn
            .query(
                "SELECT COUNT(*) FROM nonces WHERE access_key_id = 'ak3'",
                &[],
            )
            .unwrap()[0]
            .get(0);
        assert_eq!(left, 0);
        // Many at once: exactly one winner per nonce.
        let a = Arc::new(a);
        let wins: usize = (0..8)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    (0..20)
                        .filter(|i| a.use_nonce("ak5", &format!("n{i}"), 600).unwrap())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(wins, 20);
    }

    #[test]
    fn usable_from_inside_an_async_runtime() {
        let Some(db) = TestDb::new("usable_from_inside_an_async_runtime") else {
            return;
        };
        // The server calls read and use_nonce on its runtime's worker threads, and may
        // open and drop the store there too.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = PgStore::open(&db.url).unwrap();
            assert!(store.use_nonce("ak", "n", 60).unwrap());
            assert_eq!(read(&store, |tx| tx.revision()), 0);
            let (r, _) = submit_wait(&store, |tx| {
                tx.bump_revision()?;
                Ok(true)
            });
            r.unwrap();
            store.write_now(|tx| tx.bump_revision()).unwrap();
            assert_eq!(read(&store, |tx| tx.revision()), 2);
            drop(store);
        });
    }
}
