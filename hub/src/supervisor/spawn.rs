//! The only place in the hub that starts processes.
//!
//! Linux's parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread*
//! that created the child exits, not the process. Tokio's worker and blocking
//! threads come and go, so spawning from them would kill plugins at random.
//! [`Spawner`] therefore owns one dedicated, long-lived thread that starts
//! every plugin: callers send a [`SpawnSpec`] and get a [`Child`] back over a
//! oneshot. The thread lives as long as the `Spawner`; drop it only after
//! every plugin has been stopped (dropping it early kills the children it
//! spawned, which is the intended safety net when the hub dies).
//!
//! Every child:
//! * dies with the hub (`PR_SET_PDEATHSIG = SIGKILL`, and exits at once if
//!   the hub already died while it was being started);
//! * leads its own process group, so stop and kill reach its whole tree;
//! * sees only the environment the operator gave it plus the handshake
//!   variables (nothing of the hub's is inherited);
//! * gets stdin from /dev/null and pipes for stdout and stderr;
//! * runs in the config file's directory;
//! * gets its `[plugins.NAME.limits]` as resource limits (`setrlimit`),
//!   computed beforehand so the child only makes the system calls;
//! * starts with no signal blocked and every signal the hub catches (and
//!   SIGPIPE) back at its default.
//!
//! The process is created the way glibc's `posix_spawn` does it,
//! `clone(CLONE_VM | CLONE_VFORK)`, not with `fork`: see [`start_process`]
//! for why (it is most of a plugin's launch time otherwise).
//!
//! With the orphan guard on ([`enable_orphan_guard`], which `switchyard
//! run` does), the spawner thread first starts one guard process per hub
//! (`spawn/guard.rs`, the `switchyard` binary itself) and tells it the
//! process group of every plugin it starts; when the hub dies, however it
//! dies, the guard kills those groups, so a plugin's own children (which
//! the parent-death signal does not reach) die too. The hub is then also a
//! child subreaper, and the spawner thread sweeps its process tree for what
//! plugins started outside their groups (`spawn/adopt.rs`), which it
//! announces to the guard too.
//!
//! `unsafe` is confined to this file: the `clone`, the system calls the
//! child makes before `execve`, and the pidfd, `waitpid` and `kill` calls
//! [`Child`] (in `spawn/child.rs`) makes through small wrappers.

#![allow(unsafe_code)]

mod adopt;
mod child;
pub mod guard;

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use switchyard_wire::handshake::{
    APP_PROTOCOL_VERSIONS, DEFAULT_MAX_PORT, DEFAULT_MIN_PORT, ENV_CLIENT_CERT, ENV_MAX_PORT,
    ENV_MIN_PORT, ENV_PROTOCOL_VERSIONS, ENV_UNIX_SOCKET_DIR, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE,
    format_version_list,
};
use tokio::sync::oneshot;

pub use child::Child;
use guard::GuardLink;

use crate::config::{LimitsConfig, PluginConfig};
use crate::telemetry::LOG_FILTER_ENV;

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
    /// variables read from the hub's environment now, the hub's log filter
    /// (`SWITCHYARD_LOG`) unless those set it, then the handshake variables
    /// (which win over anything the operator set).
    pub fn for_plugin(plugin: &PluginConfig, socket_dir: &std::path::Path) -> Self {
        let mut env = operator_env(plugin, |name| std::env::var_os(name));
        env.extend(handshake_env(socket_dir));
        SpawnSpec {
            program: plugin.command.clone(),
            args: plugin.args.iter().map(OsString::from).collect(),
            env,
            working_dir: plugin.working_dir.clone(),
            limits: plugin.supervision.limits,
        }
    }

    /// Adds `PLUGIN_CLIENT_CERT` (the hub's PEM certificate) when AutoMTLS
    /// is on for this launch; `None` leaves the spec unchanged.
    pub fn with_client_cert(mut self, pem: Option<&str>) -> Self {
        if let Some(pem) = pem {
            self.env.push((ENV_CLIENT_CERT.into(), pem.into()));
        }
        self
    }
}

/// The environment the operator gives a plugin, with `hub_env` standing for
/// the hub's own environment: the plugin's `env`, the `env_passthrough`
/// variables that are set, and the hub's log filter when neither names it,
/// so that one variable filters the logs of the hub and of its plugins.
fn operator_env(
    plugin: &PluginConfig,
    hub_env: impl Fn(&str) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = plugin
        .env
        .iter()
        .map(|(key, value)| (key.into(), value.into()))
        .collect();
    for name in &plugin.env_passthrough {
        if let Some(value) = hub_env(name) {
            env.push((name.into(), value));
        }
    }
    if !env.iter().any(|(name, _)| name == LOG_FILTER_ENV)
        && let Some(filter) = hub_env(LOG_FILTER_ENV)
    {
        env.push((LOG_FILTER_ENV.into(), filter));
    }
    env
}

/// The go-plugin handshake variables the hub sets on every plugin. The hub
/// never sets `PLUGIN_MULTIPLEX_GRPC`; `PLUGIN_CLIENT_CERT` is added by
/// [`SpawnSpec::with_client_cert`] only for plugins with `tls = "auto"`.
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
    /// Starting the process or `exec` failed (for example: permission denied,
    /// bad interpreter, a missing working directory).
    #[error("cannot execute {program}: {source}")]
    Exec {
        /// The executable.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The program the spawner runs as the orphan guard, once enabled.
static GUARD_PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// The argument that makes the `switchyard` binary run as the orphan guard
/// (a hidden subcommand; see `spawn/guard.rs`).
pub const GUARD_SUBCOMMAND: &str = "__orphan-guard";

/// Makes every [`Spawner`] started afterwards in this process start an
/// orphan guard: `program` (the `switchyard` binary, normally
/// `/proc/self/exe`) run with [`GUARD_SUBCOMMAND`]. Only the `switchyard`
/// binary calls this; a hub run as a library (tests) has no guard. The first
/// call wins.
pub fn enable_orphan_guard(program: PathBuf) {
    let _ = GUARD_PROGRAM.set(program);
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
    /// Starts the spawner thread. It enters `runtime` so each child's pidfd
    /// and pipes are registered with that runtime's IO driver.
    pub fn start(runtime: tokio::runtime::Handle) -> Result<Self, SpawnError> {
        let (requests, receiver) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("switchyard-spawner".to_owned())
            .spawn(move || {
                let _runtime = runtime.enter();
                let guard = GUARD_PROGRAM.get().and_then(|program| {
                    start_guard(program)
                        .inspect_err(|error| {
                            tracing::error!(
                                error = %error,
                                "Cannot start the orphan guard; a plugin's own children will outlive a hub that is killed."
                            );
                        })
                        .ok()
                });
                let mut strays = guard
                    .as_ref()
                    .map(|(pid, link)| adopt::Strays::start(Arc::clone(link), *pid));
                let mut next_sweep = std::time::Instant::now() + adopt::SWEEP_INTERVAL;
                // Runs until every Spawner handle is dropped; with a guard,
                // sweeps for strays every SWEEP_INTERVAL, between requests.
                loop {
                    let request = match &mut strays {
                        None => receiver.recv().ok(),
                        Some(strays) => {
                            let wait = next_sweep.saturating_duration_since(std::time::Instant::now());
                            let request = match receiver.recv_timeout(wait) {
                                Ok(request) => Some(Some(request)),
                                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Some(None),
                                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
                            };
                            if std::time::Instant::now() >= next_sweep {
                                strays.sweep();
                                next_sweep = std::time::Instant::now() + adopt::SWEEP_INTERVAL;
                            }
                            match request {
                                Some(Some(request)) => Some(request),
                                Some(None) => continue,
                                None => None,
                            }
                        }
                    };
                    let Some(request) = request else { break };
                    let mut result = spawn_now(&request.spec);
                    if let (Ok(child), Some((_, link))) = (&mut result, &guard) {
                        child.guard_with(Arc::clone(link));
                    }
                    // The requester may have given up (its start timed out):
                    // then kill what was just started instead of leaking it.
                    if let Err(Ok(mut child)) = request.reply.send(result) {
                        kill_group_of(&child);
                        let _ = child.start_kill();
                    }
                }
                // Every plugin has been stopped by now: what they left
                // outside their groups goes too. Then closing the pipe tells
                // the guard to finish; reap it.
                if let Some(mut strays) = strays {
                    strays.kill_all();
                }
                if let Some((pid, link)) = guard {
                    link.close();
                    reap_blocking(pid);
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

/// One resource limit, ready for `setrlimit` in the child before exec.
#[derive(Debug, Clone, Copy)]
struct Rlimit {
    resource: libc::__rlimit_resource_t,
    value: libc::rlimit,
}

/// Turns the configured limits into `setrlimit` arguments (in the parent:
/// nothing here may run in the child). A limit above the hub's own hard
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

/// The child's stack while it runs between `clone` and `execve`: it only
/// makes system calls, so a small one is plenty.
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// What the child needs between `clone` and `execve`, all prepared in the
/// parent: the child shares the hub's memory and must not allocate.
struct ChildPlan {
    program: CString,
    /// NULL-terminated; points into `_argv`.
    argv: Vec<*const libc::c_char>,
    _argv: Vec<CString>,
    /// NULL-terminated; points into `_envp`.
    envp: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    working_dir: CString,
    limits: Vec<Rlimit>,
    hub_pid: libc::pid_t,
    /// Whether the child dies with the spawner thread (plugins: yes; the
    /// orphan guard: no, it must outlive the hub to clean up after it).
    dies_with_hub: bool,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// The errno of the step that failed, written by the child before it
    /// exits; stays 0 when the exec succeeds. The child shares the hub's
    /// memory (`CLONE_VM`) and the parent reads this only once the child has
    /// exec'd or exited (`CLONE_VFORK`), as glibc's `posix_spawn` reports
    /// its errors: no pipe, and no wait for the exec to close one.
    failure: AtomicI32,
}

fn c_string(bytes: &[u8], what: &str) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// The child's environment exactly as `env_clear().envs(..)` would build
/// it: one entry per name, the last value given winning.
fn environment(env: &[(OsString, OsString)]) -> std::io::Result<Vec<CString>> {
    let mut merged: BTreeMap<&OsString, &OsString> = BTreeMap::new();
    for (key, value) in env {
        merged.insert(key, value);
    }
    merged
        .into_iter()
        .map(|(key, value)| {
            if key.as_bytes().contains(&b'=') || key.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("invalid environment variable name {key:?}"),
                ));
            }
            let mut entry = key.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            c_string(&entry, "an environment variable")
        })
        .collect()
}

/// The child's standard streams (its ends).
struct Stdio {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// Starts a plugin process on the current (spawner) thread. Returns its pid
/// and the parent's ends of its stdout and stderr pipes; the process has
/// successfully exec'd its program when this returns.
fn start_process(spec: &SpawnSpec) -> std::io::Result<(libc::pid_t, OwnedFd, OwnedFd)> {
    let (stdout_read, stdout_write) = std::io::pipe()?;
    let (stderr_read, stderr_write) = std::io::pipe()?;
    let stdio = Stdio {
        stdin: OwnedFd::from(std::fs::File::open("/dev/null")?),
        stdout: OwnedFd::from(stdout_write),
        stderr: OwnedFd::from(stderr_write),
    };
    let pid = clone_and_exec(spec, stdio, true)?;
    Ok((pid, OwnedFd::from(stdout_read), OwnedFd::from(stderr_read)))
}

/// Starts the orphan guard: `program GUARD_SUBCOMMAND`, with the read end of
/// a pipe as its stdin, stdout on /dev/null, the hub's own stderr (so its
/// rare messages reach the operator), in its own process group, without the
/// parent-death signal and with an empty environment. Returns its pid and
/// the write end, which only the hub holds (close-on-exec, so no plugin
/// inherits it): the guard sees EOF exactly when the hub is gone.
fn start_guard(program: &std::path::Path) -> std::io::Result<(libc::pid_t, Arc<GuardLink>)> {
    let (read, write) = std::io::pipe()?;
    let spec = SpawnSpec {
        program: program.to_path_buf(),
        args: vec![GUARD_SUBCOMMAND.into()],
        env: Vec::new(),
        working_dir: PathBuf::from("/"),
        limits: LimitsConfig::default(),
    };
    let stdio = Stdio {
        stdin: OwnedFd::from(read),
        stdout: OwnedFd::from(std::fs::File::create("/dev/null")?),
        stderr: std::io::stderr().as_fd().try_clone_to_owned()?,
    };
    let pid = clone_and_exec(&spec, stdio, false)?;
    tracing::debug!(pid, "Orphan guard started.");
    Ok((pid, Arc::new(GuardLink::new(write))))
}

/// Starts the process on the current (spawner) thread with the given
/// standard streams; `dies_with_hub` sets the parent-death signal. Returns
/// its pid once it has successfully exec'd its program.
///
/// Like glibc's `posix_spawn`, this uses `clone(CLONE_VM | CLONE_VFORK)`:
/// the child borrows the hub's memory and this thread sleeps until the
/// child has exec'd, so nothing of the hub is copied. A plain `fork` (what
/// `Command::pre_exec` forces) copies the page tables of the whole hub and
/// makes every hub thread fault on its next writes, which costs a large
/// share of a plugin's launch. `posix_spawn` itself cannot set the
/// parent-death signal or resource limits, hence this.
fn clone_and_exec(
    spec: &SpawnSpec,
    stdio: Stdio,
    dies_with_hub: bool,
) -> std::io::Result<libc::pid_t> {
    let program = c_string(spec.program.as_os_str().as_bytes(), "the command")?;
    let mut arguments = vec![program.clone()];
    for arg in &spec.args {
        arguments.push(c_string(arg.as_bytes(), "an argument")?);
    }
    let variables = environment(&spec.env)?;
    let plan = ChildPlan {
        argv: nul_terminated(&arguments),
        _argv: arguments,
        envp: nul_terminated(&variables),
        _envp: variables,
        program,
        working_dir: c_string(
            spec.working_dir.as_os_str().as_bytes(),
            "the working directory",
        )?,
        limits: rlimits(&spec.limits),
        hub_pid: libc::pid_t::try_from(std::process::id())
            .map_err(|_| std::io::Error::other("the hub's pid is out of range"))?,
        dies_with_hub,
        stdin: stdio.stdin,
        stdout: stdio.stdout,
        stderr: stdio.stderr,
        failure: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; CHILD_STACK_BYTES];
    // SAFETY: the stack is ours and outlives the child's use of it (this
    // thread sleeps until the child has exec'd or exited: CLONE_VFORK); the
    // top is aligned down to 16 bytes as the ABI wants.
    let stack_top = unsafe { stack.as_mut_ptr().add(stack.len()) };
    let stack_top = (stack_top as usize & !15) as *mut libc::c_void;

    // Block every signal so that no hub handler can run in the child (it
    // shares the hub's memory) before it has reset them to the default: with
    // the raw system call, because glibc's wrappers leave its own two
    // internal signals unblocked.
    // SAFETY: sigfillset and rt_sigprocmask only write the sets given.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        set_signal_mask(&all, &mut previous);
    }
    // SAFETY: `child_main` only makes async-signal-safe system calls on the
    // plan, which lives on this (suspended) thread's stack frame.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(&plan).cast_mut().cast::<libc::c_void>(),
        )
    };
    let clone_error = std::io::Error::last_os_error();
    // SAFETY: restores this thread's mask.
    unsafe {
        set_signal_mask(&previous, std::ptr::null_mut());
    }
    drop(stack);
    if pid == -1 {
        return Err(clone_error);
    }
    // The child has exec'd or exited by now (CLONE_VFORK): what it wrote
    // is there to read, and our copies of its standard streams can go.
    let failed = plan.failure.load(Ordering::Acquire);
    drop(plan);
    if failed != 0 {
        // The child has exited (it writes, then _exits): reap it.
        reap_blocking(pid);
        return Err(std::io::Error::from_raw_os_error(failed));
    }
    Ok(pid)
}

/// `rt_sigprocmask(SIG_SETMASK, ..)` as the kernel sees it (all 64 signals).
///
/// # Safety
/// `previous` must be null or point to a writable `sigset_t`.
unsafe fn set_signal_mask(mask: &libc::sigset_t, previous: *mut libc::sigset_t) {
    // SAFETY: the kernel reads and writes 8 bytes of the sets given, which
    // are larger (glibc's sigset_t is 128 bytes).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            std::ptr::from_ref(mask),
            previous,
            8usize,
        );
    }
}

fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|string| string.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child between `clone` and `execve`. It shares the hub's memory, so it
/// only makes system calls on the prepared [`ChildPlan`]: no allocation, no
/// lock, no panic. On failure it leaves the errno in the plan's `failure`
/// and exits 127.
extern "C" fn child_main(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `plan` is the ChildPlan the parent passed to clone; the
    // parent's thread sleeps (CLONE_VFORK) until this exec's or exits.
    let plan = unsafe { &*(plan as *const ChildPlan) };
    // SAFETY: everything below is a system call on prepared data.
    unsafe {
        // A hub handler must never run here: back to the defaults (exec
        // would reset them anyway) before unblocking signals. SIGPIPE, which
        // Rust ignores in the hub, goes back to the default too, as with
        // std's Command.
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=64 {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && (current.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE)
                && current.sa_sigaction != libc::SIG_DFL
            {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let redirects = [
            (plan.stdin.as_raw_fd(), libc::STDIN_FILENO),
            (plan.stdout.as_raw_fd(), libc::STDOUT_FILENO),
            (plan.stderr.as_raw_fd(), libc::STDERR_FILENO),
        ];
        for (from, to) in redirects {
            let result = if from == to {
                // dup2 onto itself would keep close-on-exec.
                libc::fcntl(from, libc::F_SETFD, 0)
            } else {
                libc::dup2(from, to)
            };
            if result == -1 {
                fail(plan);
            }
        }
        if libc::chdir(plan.working_dir.as_ptr()) == -1 {
            fail(plan);
        }
        // Leads its own process group.
        if libc::setpgid(0, 0) == -1 {
            fail(plan);
        }
        // Dies with the hub (with the spawner thread, precisely).
        if plan.dies_with_hub {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                fail(plan);
            }
            // The hub may have died before prctl; then the signal will never
            // come, so leave now.
            if libc::getppid() != plan.hub_pid {
                libc::_exit(1);
            }
        }
        for limit in &plan.limits {
            if libc::setrlimit(limit.resource, &limit.value) == -1 {
                fail(plan);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        set_signal_mask(&empty, std::ptr::null_mut());
        libc::execve(
            plan.program.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr(),
        );
        fail(plan)
    }
}

/// Reports the current errno to the parent and exits (in the child).
unsafe fn fail(plan: &ChildPlan) -> ! {
    // SAFETY: reading errno, an atomic store into the plan (the parent's
    // memory, which the child shares) and _exit are all async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        // A failing call that left errno at 0 still fails the spawn.
        let errno = if errno == 0 { libc::EIO } else { errno };
        plan.failure.store(errno, Ordering::Release);
        libc::_exit(127)
    }
}

/// Starts the process on the current (spawner) thread and wraps it.
fn spawn_now(spec: &SpawnSpec) -> Result<Child, SpawnError> {
    let exec_error = |source| SpawnError::Exec {
        program: spec.program.display().to_string(),
        source,
    };
    let (pid, stdout, stderr) = start_process(spec).map_err(exec_error)?;
    match Child::new(
        pid,
        std::process::ChildStdout::from(stdout),
        std::process::ChildStderr::from(stderr),
    ) {
        Ok(child) => Ok(child),
        Err(err) => {
            // Never leave it running: kill its group and reap it.
            let _ = kill(-pid, libc::SIGKILL);
            reap_blocking(pid);
            Err(exec_error(err))
        }
    }
}

// The system calls [`Child`] makes, kept here with the rest of the hub's
// `unsafe`.

/// `kill(pid, signal)`; a negative pid names a process group.
fn kill(pid: libc::pid_t, signal: libc::c_int) -> std::io::Result<()> {
    // SAFETY: kill takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Collects the exit status of our child `pid` if it has exited
/// (`waitpid` with `WNOHANG`).
fn try_reap(pid: libc::pid_t) -> std::io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt as _;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into the int it is given.
        let result = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if result == pid {
            return Ok(Some(std::process::ExitStatus::from_raw(status)));
        }
        if result == 0 {
            return Ok(None);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Waits for our child `pid` to exit and reaps it (it has exited or was
/// killed, so this does not block for long).
fn reap_blocking(pid: libc::pid_t) {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into the int it is given.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

/// A pidfd for our child `pid` (readable once it has exited).
fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| std::io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers `fd` with the current tokio runtime for readability.
fn register_readable(fd: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the fd, so it stays open and the same for as
    // long as it is registered.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    Ok(registered?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::process::ExitStatus;
    use std::time::Duration;

    use tokio::io::AsyncReadExt as _;

    use super::*;

    fn spec(script: &str) -> SpawnSpec {
        SpawnSpec {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            working_dir: PathBuf::from("/"),
            limits: LimitsConfig::default(),
        }
    }

    /// Runs `spec` to completion; returns its stdout and exit status.
    async fn run(spawner: &Spawner, spec: SpawnSpec) -> (String, ExitStatus) {
        let mut child = spawner.spawn(spec).await.unwrap();
        let mut output = String::new();
        let mut stdout = child.stdout.take().unwrap();
        stdout.read_to_string(&mut output).await.unwrap();
        let status = child.wait().await.unwrap();
        (output, status)
    }

    #[test]
    fn the_hub_hands_its_log_filter_to_plugins_that_set_none() {
        let config = crate::config::parse(
            std::path::Path::new("plugins.toml"),
            "[plugins.plain]\ncommand = \"/bin/sh\"\nenv = { A = \"1\" }\n\
             [plugins.own]\ncommand = \"/bin/sh\"\nenv = { SWITCHYARD_LOG = \"trace\" }\n\
             [plugins.passed]\ncommand = \"/bin/sh\"\nenv_passthrough = [\"SWITCHYARD_LOG\", \"HOME\"]\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        let hub_env = |name: &str| match name {
            "SWITCHYARD_LOG" => Some(OsString::from("warn,switchyard=debug")),
            "HOME" => Some(OsString::from("/home/operator")),
            _ => None,
        };
        let env_of = |index: usize, hub_env: &dyn Fn(&str) -> Option<OsString>| {
            operator_env(&config.plugins[index], hub_env)
                .into_iter()
                .map(|(name, value)| {
                    format!("{}={}", name.to_string_lossy(), value.to_string_lossy())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            env_of(0, &hub_env),
            ["A=1", "SWITCHYARD_LOG=warn,switchyard=debug"]
        );
        assert_eq!(
            env_of(1, &hub_env),
            ["SWITCHYARD_LOG=trace"],
            "its own wins"
        );
        assert_eq!(
            env_of(2, &hub_env),
            [
                "SWITCHYARD_LOG=warn,switchyard=debug",
                "HOME=/home/operator"
            ],
            "passed through once"
        );
        assert_eq!(
            env_of(0, &|_| None),
            ["A=1"],
            "nothing when the hub has none"
        );
    }

    #[tokio::test]
    async fn the_child_gets_exactly_what_the_spec_says() {
        let spawner = Spawner::start(tokio::runtime::Handle::current()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(
            "env | sort; pwd; readlink /proc/self/fd/0; \
             grep -E '^Sig(Blk|Ign)' /proc/self/status; ulimit -n; \
             echo pgrp=$(cut -d' ' -f5 /proc/self/stat) pid=$$",
        );
        spec.env.push(("B".into(), "first".into()));
        spec.env.push(("A".into(), "1".into()));
        spec.env.push(("B".into(), "last wins".into()));
        spec.working_dir = dir.path().to_path_buf();
        spec.limits.open_files = Some(64);
        let (output, status) = run(&spawner, spec).await;
        assert!(status.success(), "{status:?}: {output}");
        let lines: Vec<&str> = output.lines().collect();
        // `sh` may add PWD, SHLVL and `_` itself; nothing of the hub's leaks.
        let env: Vec<&str> = lines
            .iter()
            .copied()
            .take_while(|line| line.contains('='))
            .filter(|line| !["PWD=", "SHLVL=", "_="].iter().any(|p| line.starts_with(p)))
            .collect();
        assert_eq!(env, ["A=1", "B=last wins", "PATH=/usr/bin:/bin"]);
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        assert!(lines.contains(&dir.to_str().unwrap()), "{output}");
        assert!(lines.contains(&"/dev/null"), "{output}");
        // No signal blocked, and SIGPIPE (ignored by Rust in the hub) back to
        // the default.
        assert!(lines.contains(&"SigBlk:\t0000000000000000"), "{output}");
        let ignored = lines
            .iter()
            .find_map(|line| line.strip_prefix("SigIgn:\t"))
            .unwrap();
        let ignored = u64::from_str_radix(ignored, 16).unwrap();
        assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{output}");
        assert!(lines.contains(&"64"), "{output}");
        // Leads its own process group.
        let last = lines.last().unwrap();
        let pid = last.split("pid=").nth(1).unwrap();
        assert_eq!(*last, format!("pgrp={pid} pid={pid}"));
    }

    #[tokio::test]
    async fn exec_failures_are_reported_and_reaped() {
        let spawner = Spawner::start(tokio::runtime::Handle::current()).unwrap();
        let mut missing = spec("");
        missing.program = PathBuf::from("/nonexistent/plugin");
        let err = spawner.spawn(missing).await.unwrap_err();
        let SpawnError::Exec { program, source } = &err else {
            panic!("{err}")
        };
        assert_eq!(program, "/nonexistent/plugin");
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);

        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("plugin");
        std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
        let mut spec_not_executable = spec("");
        spec_not_executable.program = not_executable;
        let err = spawner.spawn(spec_not_executable).await.unwrap_err();
        assert!(err.to_string().contains("ermission denied"), "{err}");

        let mut bad_dir = spec("");
        bad_dir.working_dir = dir.path().join("missing");
        let err = spawner.spawn(bad_dir).await.unwrap_err();
        assert!(err.to_string().contains("No such file"), "{err}");

        // Every failed child was reaped: no zombie of ours still carries the
        // spawner thread's name (a child that never exec'd keeps it).
        let me = std::process::id().to_string();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((comm, rest)) = stat.split_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split(' ').collect();
            assert!(
                !(comm.ends_with("(switchyard-spaw") && fields[0] == "Z" && fields[1] == me),
                "an unreaped child: {stat}"
            );
        }
    }

    #[tokio::test]
    async fn children_die_with_the_spawner_thread() {
        let spawner = Spawner::start(tokio::runtime::Handle::current()).unwrap();
        let mut child = spawner.spawn(spec("exec sleep 30")).await.unwrap();
        // The thread exits once its last handle is gone; PR_SET_PDEATHSIG
        // then kills what it started.
        drop(spawner);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the child outlived the spawner thread")
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert_eq!(child.id(), None);
    }

    #[tokio::test]
    async fn wait_is_cancel_safe_and_kill_works() {
        let spawner = Spawner::start(tokio::runtime::Handle::current()).unwrap();
        let mut child = spawner.spawn(spec("exec sleep 30")).await.unwrap();
        assert!(child.id().is_some());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), child.wait())
                .await
                .is_err()
        );
        assert!(child.try_wait().unwrap().is_none());
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        // Later calls return the same status.
        assert_eq!(child.wait().await.unwrap(), status);
    }

    #[tokio::test]
    async fn a_dropped_child_is_killed_and_reaped() {
        let spawner = Spawner::start(tokio::runtime::Handle::current()).unwrap();
        let child = spawner.spawn(spec("exec sleep 30")).await.unwrap();
        let pid = child.id().unwrap();
        drop(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // Gone from /proc once killed and reaped (a zombie keeps its entry).
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dropped child is still there"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
