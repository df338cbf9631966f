//! The servers a benchmark measures, each a child process of its own so that its memory
//! (RSS) and its open files are its own: Agora (`agora serve` on a fresh temporary
//! database) and the baseline (`agora bench-baseline-server`, bare axum).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use super::BenchArgs;
use agora_client::Client;
use anyhow::{Context, bail};
use axum::{Router, extract::State, routing::get};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::Notify,
};

/// No rate limits (the default per-key and the named ones): the benchmark is the only
/// client, and it means to load the server. Webhooks may go to the local receiver. `idle`
/// holds 15,000 connections at once, past the default cap of 10,000 (this machine allows
/// 20,000 open files per process). Everything else is the operator's default.
const CONFIG: &str =
    "rate_limit_per_minute = 0\nallow_private_webhooks = true\nmax_connections = 19000\n\n[rate_limits]\n";

/// What a run has made and not yet removed: its servers' directories and PostgreSQL
/// scratch schemas. Each is listed the moment it exists and struck off when its server's
/// `stop` removes it, so a run that fails or is interrupted half-way cleans up exactly what
/// is left (`clean`). The servers themselves need no entry: a `Child` kills its process
/// when dropped (`kill_on_drop`), and an interrupted run drops them all.
#[derive(Debug, Clone, Default)]
pub struct Leftovers(Arc<Mutex<Vec<Leftover>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Leftover {
    Dir(PathBuf),
    Schema { server_url: String, name: String },
}

impl Leftovers {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Leftover>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, leftover: Leftover) {
        self.list().push(leftover);
    }

    /// Removes one leftover now and strikes it off the list.
    async fn remove(&self, leftover: Leftover) -> anyhow::Result<()> {
        let removed = match &leftover {
            Leftover::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
                Ok(())
            }
            Leftover::Schema { server_url, name } => {
                agora_store_postgres::scratch::drop_schema(server_url, name)
                    .await
                    .context("dropping the benchmark schema")
            }
        };
        self.list().retain(|l| *l != leftover);
        removed
    }

    /// Removes everything still listed, schemas first (their servers' connections are gone
    /// with the servers), and says what could not be removed.
    pub async fn clean(&self) {
        let left: Vec<Leftover> = self.list().drain(..).collect();
        for leftover in left.into_iter().rev() {
            if let Err(e) = self.remove(leftover.clone()).await {
                eprintln!("agora bench: could not remove {leftover:?}: {e:#}");
            }
        }
    }

    /// A fresh benchmark schema in the database at `server_url`, listed: its name, and the
    /// URL that selects it.
    async fn scratch_schema(&self, server_url: &str) -> anyhow::Result<(String, String)> {
        let schema = agora_store_postgres::scratch::create_schema(server_url, "agora_bench")
            .await
            .context("creating a benchmark schema in the PostgreSQL database")?;
        self.add(Leftover::Schema { server_url: server_url.to_owned(), name: schema.clone() });
        let url = agora_store_postgres::scratch::url_with_search_path(server_url, &schema);
        Ok((schema, url))
    }

    /// Where a server keeps its files (the SQLite database, the config, its log), listed.
    fn run_dir(&self, label: &str) -> anyhow::Result<PathBuf> {
        let dir =
            std::env::temp_dir().join(format!("agora-bench-{label}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.add(Leftover::Dir(dir.clone()));
        Ok(dir)
    }
}

/// A store opened in this process on a fresh database (a SQLite file in a run directory,
/// or a scratch schema), migrated; both listed in `args.leftovers`.
pub async fn fresh_store(args: &BenchArgs, label: &str) -> anyhow::Result<Arc<dyn agora_store::Store>> {
    let dir = args.leftovers.run_dir(label)?;
    let store: Arc<dyn agora_store::Store> = match args.database_url.as_deref() {
        None => {
            let s = agora_store_sqlite::SqliteStore::open_file(&dir.join("agora.db")).await?;
            s.migrate().await?;
            Arc::new(s)
        }
        Some(server_url) => {
            let (_, url) = args.leftovers.scratch_schema(server_url).await?;
            let s = agora_store_postgres::PgStore::connect(&url).await?;
            s.migrate().await?;
            Arc::new(s)
        }
    };
    Ok(store)
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The resident memory of a process, in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb * 1024)
}

/// Asks a child to stop as an operator would (SIGTERM), then waits for it.
async fn terminate(child: &mut Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        // std has no portable way to send SIGTERM, and unsafe code is forbidden here.
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    }
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(status) => {
            status.context("waiting for the server")?;
        }
        Err(_) => {
            child.start_kill().context("killing a server that ignored SIGTERM")?;
            child.wait().await.context("waiting for the killed server")?;
        }
    }
    Ok(())
}

/// Reads a child's standard output until `ready` finds what it waits for, then keeps
/// draining it so the child never blocks on a full pipe.
async fn read_until<T>(
    child: &mut Child,
    what: &str,
    log: &Path,
    mut ready: impl FnMut(&str) -> Option<T>,
) -> anyhow::Result<T> {
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(v) = ready(&line) {
                return Ok::<_, std::io::Error>(Some(v));
            }
        }
        Ok(None)
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match found {
        Ok(Ok(Some(v))) => Ok(v),
        _ => bail!("{what} did not start; its log is {}", log.display()),
    }
}

/// The database an Agora server runs on: a temporary SQLite file, or a fresh schema in a
/// PostgreSQL database (dropped when the server is stopped).
#[derive(Debug)]
enum Database {
    Sqlite,
    Postgres { server_url: String, schema: String, url: String },
}

/// One `agora serve` child on a fresh database, with a logged-in admin client.
#[derive(Debug)]
pub struct Agora {
    child: Child,
    dir: PathBuf,
    db: Database,
    leftovers: Leftovers,
    pub url: String,
    /// A client of this server with no credentials (one connection pool, reused).
    pub client: Client,
    pub admin: Client,
    log_filter: String,
    /// Further servers on the same PostgreSQL schema (`add_replica`): each child and its URL.
    replicas: Vec<(Child, String)>,
}

impl Agora {
    /// Starts a server on a fresh database, as `args` says (SQLite or PostgreSQL, log
    /// filter); what it makes is listed in `args.leftovers` until `stop`.
    pub async fn start(args: &BenchArgs, label: &str) -> anyhow::Result<Self> {
        let (leftovers, log_filter) = (&args.leftovers, args.server_log.as_str());
        let dir = leftovers.run_dir(label)?;
        std::fs::write(dir.join("bench.toml"), CONFIG).context("writing the benchmark config")?;
        let db = match args.database_url.as_deref() {
            None => Database::Sqlite,
            Some(server_url) => {
                let (schema, url) = leftovers.scratch_schema(server_url).await?;
                Database::Postgres { server_url: server_url.to_owned(), schema, url }
            }
        };
        let (child, url, admin) = spawn(&dir, &db, log_filter).await?;
        let admin = admin.context("the fresh server printed no admin credential")?;
        let base = Client::new(url.clone());
        let tokens = base.token(&admin.0, &admin.1).await.context("logging in as the first-start admin")?;
        Ok(Self {
            child,
            dir,
            db,
            leftovers: leftovers.clone(),
            admin: base.with_token(tokens.access_token),
            client: base,
            url,
            log_filter: log_filter.to_owned(),
            replicas: Vec::new(),
        })
    }

    /// Starts one more server on this server's PostgreSQL schema, as another replica of one
    /// deployment; returns its URL. SQLite has no replicas: one process owns the file.
    pub async fn add_replica(&mut self) -> anyhow::Result<String> {
        anyhow::ensure!(
            matches!(self.db, Database::Postgres { .. }),
            "replicas need PostgreSQL (--database-url): one process owns a SQLite file"
        );
        let dir = self.dir.join(format!("replica-{}", self.replicas.len() + 1));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("bench.toml"), CONFIG).context("writing the benchmark config")?;
        let (child, url, _) = spawn(&dir, &self.db, &self.log_filter).await?;
        self.replicas.push((child, url.clone()));
        Ok(url)
    }

    /// Every server's URL: this one first, then its replicas.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(self.url.clone()).chain(self.replicas.iter().map(|(_, u)| u.clone())).collect()
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the server has exited")
    }

    /// Stops the server and starts it again on the same database (a fresh process heap;
    /// the admin's token stays valid).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        terminate(&mut self.child).await?;
        let (child, url, _) = spawn(&self.dir, &self.db, &self.log_filter).await?;
        self.child = child;
        self.admin = self.admin.rebase(url.clone());
        self.client = self.client.rebase(url.clone());
        self.url = url;
        Ok(())
    }

    /// SIGTERM (waiting long-polls are answered and closed), waits for the exit, and removes
    /// the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for (child, _) in &mut self.replicas {
            terminate(child).await?;
        }
        terminate(&mut self.child).await?;
        if let Database::Postgres { server_url, schema, .. } = self.db {
            self.leftovers.remove(Leftover::Schema { server_url, name: schema }).await?;
        }
        self.leftovers.remove(Leftover::Dir(self.dir)).await
    }

    /// Reads one gauge or counter from `/metrics` (as the admin: metrics are not public),
    /// summed over this server and its replicas.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for url in self.urls() {
            let reply = self.admin.rebase(url).send(reqwest::Method::GET, "/metrics", None, &[]).await?;
            sum += reply
                .text
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .with_context(|| format!("no {name} in /metrics"))?;
        }
        Ok(sum)
    }
}

type Credential = (String, String);

async fn spawn(
    dir: &Path,
    db: &Database,
    log_filter: &str,
) -> anyhow::Result<(Child, String, Option<Credential>)> {
    let exe = std::env::current_exe().context("finding the agora binary")?;
    let log_path = dir.join("server.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--config")
        .arg(dir.join("bench.toml"))
        .env("AGORA_DATA_DIR", dir)
        .env("RUST_LOG", log_filter)
        .env_remove("AGORA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("AGORA_PUBLIC_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    if let Database::Postgres { url, .. } = db {
        cmd.env("AGORA_DATABASE_URL", url);
    }
    let mut child = cmd.spawn().context("starting agora serve")?;
    let (mut email, mut password) = (None, None);
    let url = read_until(&mut child, "agora serve", &log_path, |line| {
        if let Some(v) = line.trim().strip_prefix("email:") {
            email = Some(v.trim().to_owned());
        } else if let Some(v) = line.trim().strip_prefix("password:") {
            password = Some(v.trim().to_owned());
        }
        line.strip_prefix("Agora is listening on ")
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    })
    .await?;
    Ok((child, url, email.zip(password)))
}

/// The bare baseline child: what any HTTP endpoint on this machine, in this run, can do.
#[derive(Debug)]
pub struct Baseline {
    child: Child,
    pub url: String,
    dir: PathBuf,
    leftovers: Leftovers,
}

impl Baseline {
    pub async fn start(leftovers: &Leftovers) -> anyhow::Result<Self> {
        let dir = leftovers.run_dir("baseline")?;
        let log_path = dir.join("baseline.log");
        let log = std::fs::File::create(&log_path)?;
        let exe = std::env::current_exe().context("finding the agora binary")?;
        let mut child = Command::new(exe)
            .arg("bench-baseline-server")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the baseline server")?;
        let url = read_until(&mut child, "the baseline server", &log_path, |line| {
            line.strip_prefix("listening on ").map(str::to_owned)
        })
        .await?;
        Ok(Self { child, url, dir, leftovers: leftovers.clone() })
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the baseline server has exited")
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        terminate(&mut self.child).await?;
        self.leftovers.remove(Leftover::Dir(self.dir)).await
    }
}

#[derive(Debug, Default)]
struct BaselineState {
    notify: Notify,
    waiting: AtomicUsize,
}

/// Leaves the count when the request's future is dropped (a disconnect) or finishes.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `agora bench-baseline-server`: hello world at `/hello`; at `/wait` a handler that awaits
/// a `Notify` for up to 60 s (the shape of an inbox long-poll with nothing in it);
/// `/waiting` counts those waiting; SIGTERM releases them and stops.
pub async fn baseline_server() -> anyhow::Result<()> {
    async fn hello() -> &'static str {
        "hello"
    }
    async fn wait(State(s): State<Arc<BaselineState>>) -> &'static str {
        s.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(&s.waiting);
        let _ = tokio::time::timeout(Duration::from_secs(60), s.notify.notified()).await;
        "{\"task\":null}"
    }
    async fn waiting(State(s): State<Arc<BaselineState>>) -> String {
        s.waiting.load(Ordering::Relaxed).to_string()
    }
    let state = Arc::new(BaselineState::default());
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/wait", get(wait))
        .route("/waiting", get(waiting))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
            state.notify.notify_waiters();
        })
        .await?;
    Ok(())
}
