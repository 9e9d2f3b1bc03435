//! The only place in the hub that starts processes.
//!
//! Linux's parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread*
//! that forked the child exits, not the process. Tokio's worker and blocking
//! threads come and go, so spawning from them would kill plugins at random.
//! [`Spawner`] therefore owns one dedicated, long-lived thread that performs
//! every fork: callers send a [`SpawnSpec`] and get the `tokio::process::Child`
//! back over a oneshot. The thread lives as long as the `Spawner`; drop it
//! only after every plugin has been stopped (dropping it early kills the
//! children it spawned, which is the intended safety net when the hub dies).
//!
//! Every child:
//! * dies with the hub (`PR_SET_PDEATHSIG = SIGKILL`, and exits at once if
//!   the hub already died during the fork);
//! * leads its own process group, so stop and kill reach its whole tree;
//! * sees only the environment the operator gave it plus the handshake
//!   variables (`env_clear`);
//! * gets stdin from /dev/null and pipes for stdout and stderr;
//! * runs in the config file's directory;
//! * gets its `[plugins.NAME.limits]` as resource limits (`setrlimit`),
//!   computed before the fork so the child only makes the system calls.
//!
//! `unsafe` is confined to this file: `pre_exec` and the libc calls in it.

#![allow(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use switchyard_wire::handshake::{
    APP_PROTOCOL_VERSIONS, DEFAULT_MAX_PORT, DEFAULT_MIN_PORT, ENV_MAX_PORT, ENV_MIN_PORT,
    ENV_PROTOCOL_VERSIONS, ENV_UNIX_SOCKET_DIR, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE,
    format_version_list,
};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::config::{LimitsConfig, PluginConfig};

/// Everything needed to start one plugin process.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// The executable, absolute.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The complete environment (nothing else is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// The working directory.
    pub working_dir: PathBuf,
    /// Resource limits to apply before exec.
    pub limits: LimitsConfig,
}

impl SpawnSpec {
    /// The spec for a configured plugin: its `env`, the `env_passthrough`
    /// variables read from the hub's environment now, then the handshake
    /// variables (which win over anything the operator set).
    pub fn for_plugin(plugin: &PluginConfig, socket_dir: &std::path::Path) -> Self {
        let mut env: Vec<(OsString, OsString)> = plugin
            .env
            .iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        for name in &plugin.env_passthrough {
            if let Some(value) = std::env::var_os(name) {
                env.push((name.into(), value));
            }
        }
        env.extend(handshake_env(socket_dir));
        SpawnSpec {
            program: plugin.command.clone(),
            args: plugin.args.iter().map(OsString::from).collect(),
            env,
            working_dir: plugin.working_dir.clone(),
            limits: plugin.supervision.limits,
        }
    }
}

/// The go-plugin handshake variables the hub sets on every plugin. The hub
/// never sets `PLUGIN_MULTIPLEX_GRPC` or `PLUGIN_CLIENT_CERT`.
pub fn handshake_env(socket_dir: &std::path::Path) -> Vec<(OsString, OsString)> {
    vec![
        (MAGIC_COOKIE_KEY.into(), MAGIC_COOKIE_VALUE.into()),
        (
            ENV_PROTOCOL_VERSIONS.into(),
            format_version_list(APP_PROTOCOL_VERSIONS).into(),
        ),
        (
            ENV_UNIX_SOCKET_DIR.into(),
            socket_dir.as_os_str().to_owned(),
        ),
        (ENV_MIN_PORT.into(), DEFAULT_MIN_PORT.to_string().into()),
        (ENV_MAX_PORT.into(), DEFAULT_MAX_PORT.to_string().into()),
    ]
}

/// Why a plugin could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The spawner thread is gone (the hub is shutting down).
    #[error("the hub's spawner thread is not running")]
    SpawnerGone,
    /// The spawner thread itself could not be started.
    #[error("cannot start the spawner thread: {0}")]
    Thread(std::io::Error),
    /// `fork`/`exec` failed (for example: permission denied, bad interpreter).
    #[error("cannot execute {program}: {source}")]
    Exec {
        /// The executable.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

struct SpawnRequest {
    spec: SpawnSpec,
    reply: oneshot::Sender<Result<Child, SpawnError>>,
}

/// A handle to the dedicated spawner thread.
#[derive(Debug)]
pub struct Spawner {
    requests: std::sync::mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    /// Starts the spawner thread. It enters `runtime` so the children are
    /// registered with that runtime's process driver.
    pub fn start(runtime: tokio::runtime::Handle) -> Result<Self, SpawnError> {
        let (requests, receiver) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("switchyard-spawner".to_owned())
            .spawn(move || {
                let _runtime = runtime.enter();
                // Runs until every Spawner handle is dropped.
                while let Ok(request) = receiver.recv() {
                    let result = spawn_now(&request.spec);
                    // The requester may have given up (its start timed out):
                    // then kill what was just started instead of leaking it.
                    if let Err(Ok(mut child)) = request.reply.send(result) {
                        kill_group_of(&child);
                        let _ = child.start_kill();
                    }
                }
            })
            .map_err(SpawnError::Thread)?;
        Ok(Spawner { requests })
    }

    /// Starts a process as described by `spec`, from the spawner thread.
    pub async fn spawn(&self, spec: SpawnSpec) -> Result<Child, SpawnError> {
        let (reply, response) = oneshot::channel();
        self.requests
            .send(SpawnRequest { spec, reply })
            .map_err(|_| SpawnError::SpawnerGone)?;
        response.await.map_err(|_| SpawnError::SpawnerGone)?
    }
}

fn kill_group_of(child: &Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// One resource limit, ready for `setrlimit` in the forked child.
#[derive(Debug, Clone, Copy)]
struct Rlimit {
    resource: libc::__rlimit_resource_t,
    value: libc::rlimit,
}

/// Turns the configured limits into `setrlimit` arguments (in the parent:
/// nothing here may run after the fork). A limit above the hub's own hard
/// limit is lowered to it, since an unprivileged process cannot raise it.
fn rlimits(limits: &LimitsConfig) -> Vec<Rlimit> {
    let wanted = [
        (libc::RLIMIT_AS, limits.memory, "memory"),
        (libc::RLIMIT_CPU, limits.cpu_time, "cpu_time"),
        (libc::RLIMIT_NOFILE, limits.open_files, "open_files"),
        (libc::RLIMIT_NPROC, limits.processes, "processes"),
    ];
    let mut result = Vec::new();
    for (resource, value, key) in wanted {
        let Some(value) = value else { continue };
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        let hard = if unsafe { libc::getrlimit(resource, &mut current) } == 0 {
            current.rlim_max
        } else {
            libc::RLIM_INFINITY
        };
        let mut limit = value as libc::rlim_t;
        if hard != libc::RLIM_INFINITY && limit > hard {
            tracing::warn!(
                limit = key,
                wanted = value,
                hard,
                "A resource limit is above the hub's own hard limit; using the hard limit."
            );
            limit = hard;
        }
        result.push(Rlimit {
            resource,
            value: libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            },
        });
    }
    result
}

/// Forks and execs on the current (spawner) thread.
fn spawn_now(spec: &SpawnSpec) -> Result<Child, SpawnError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A safety net only: stop.rs always stops and reaps explicitly.
        .kill_on_drop(true);
    let hub_pid = std::process::id();
    let limits = rlimits(&spec.limits);
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe functions may be called. It calls prctl, getppid,
    // setrlimit and _exit, all async-signal-safe; it allocates nothing (the
    // limits were computed before the fork) and takes no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The hub may have died between fork and prctl; then the signal
            // will never come, so leave now.
            if libc::getppid() as u32 != hub_pid {
                libc::_exit(1);
            }
            for limit in &limits {
                if libc::setrlimit(limit.resource, &limit.value) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn().map_err(|source| SpawnError::Exec {
        program: spec.program.display().to_string(),
        source,
    })
}
