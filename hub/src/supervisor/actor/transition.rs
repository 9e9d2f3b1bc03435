//! What an operator's command means, decided in one place: a pure function
//! from (the actor's [`Phase`], the [`CommandKind`] that arrived) to a
//! [`Transition`], the ordered [`Action`]s the actor executes and where it
//! goes [`Next`]. The actor loop only executes transitions; it never decides
//! what a command means.
//!
//! | phase \ command | Stop | Start | Restart | Shutdown | handles gone |
//! | --- | --- | --- | --- | --- | --- |
//! | starting, running | stop process, stopped on request; idle | answer; stay | stop process, restart (history cleared); launch | stop process, stopped on request; end | stop process, stopped on request; end |
//! | backoff | stopped (last exit kept); idle | restart (history kept); launch | restart (history cleared); launch | stopped; end | stopped; end |
//! | idle | answer; stay | start (history cleared, no restart counted); launch | restart (history cleared); launch | answer; end | end |
//!
//! Every command is answered exactly once, as the last action, so the
//! caller sees the status the command produced.

/// Where the actor is when a command arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// A process was launched and its handshake is under way.
    Starting,
    /// The process completed its handshake and serves calls.
    Running,
    /// No process: a restart is due after a delay.
    Backoff,
    /// No process: `stopped` or `failed`, waiting for an operator.
    Idle,
}

impl Phase {
    /// Every phase, for exhaustive tests.
    pub const ALL: [Phase; 4] = [Phase::Starting, Phase::Running, Phase::Backoff, Phase::Idle];

    /// Whether a process exists in this phase (so a command that takes the
    /// actor elsewhere must stop it first).
    pub fn has_process(self) -> bool {
        matches!(self, Phase::Starting | Phase::Running)
    }
}

/// What arrived on the actor's command channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// [`super::Command::Stop`].
    Stop,
    /// [`super::Command::Start`].
    Start,
    /// [`super::Command::Restart`].
    Restart,
    /// [`super::Command::Shutdown`].
    Shutdown,
    /// The channel closed: every handle is gone (the hub is gone). Treated
    /// as a shutdown nobody waits for.
    HandlesGone,
}

impl CommandKind {
    /// Every command, for exhaustive tests.
    pub const ALL: [CommandKind; 5] = [
        CommandKind::Stop,
        CommandKind::Start,
        CommandKind::Restart,
        CommandKind::Shutdown,
        CommandKind::HandlesGone,
    ];
}

/// A log line a transition emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Note {
    /// "Starting plugin on request."
    StartOnRequest,
    /// "Restarting plugin." (reason: an operator asked for it).
    RestartOnRequest,
    /// "Plugin stopped during its restart backoff."
    StoppedDuringBackoff,
}

/// One step of a transition, executed in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Withdraw the connection, go `stopping` and stop the process with the
    /// full escalation (Shutdown once it has a connection, grace, SIGTERM,
    /// SIGKILL), reaping it. Only ever first, and only where a process
    /// exists.
    StopProcess,
    /// `last_exit` becomes "stopped on request" (the process is gone).
    RecordStopOnRequest,
    /// One status change: `stopped`, no pid, no restart due.
    EnterStopped,
    /// Log a line.
    Log(Note),
    /// Forget the restart history (backoff and intensity cap).
    ResetHistory,
    /// One status change: one more restart, `starting`, no restart due.
    CountRestart,
    /// Answer the command's `done` channel.
    Answer,
}

/// Where the actor goes after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Next {
    /// Stay where it is (the current process keeps running, or the actor
    /// keeps waiting).
    Stay,
    /// Launch a new process.
    Launch,
    /// Wait for an operator (`stopped` or `failed`).
    Idle,
    /// End the actor.
    End,
}

/// What a command does in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The steps, in order.
    pub actions: &'static [Action],
    /// Where the actor goes afterwards.
    pub next: Next,
}

impl Transition {
    /// Whether the transition stops the current process.
    pub fn stops_process(&self) -> bool {
        self.actions.contains(&Action::StopProcess)
    }
}

use Action::{
    Answer, CountRestart, EnterStopped, Log, RecordStopOnRequest, ResetHistory, StopProcess,
};

/// The meaning of `command` in `phase`: the one place it is decided.
pub const fn transition(phase: Phase, command: CommandKind) -> Transition {
    use CommandKind as C;
    use Phase as P;
    let (actions, next): (&'static [Action], Next) = match (phase, command) {
        // A process exists: anything but Start stops it first.
        (P::Starting | P::Running, C::Stop) => (
            &[StopProcess, RecordStopOnRequest, EnterStopped, Answer],
            Next::Idle,
        ),
        (P::Starting | P::Running, C::Start) => (&[Answer], Next::Stay),
        (P::Starting | P::Running, C::Restart) => (
            &[
                StopProcess,
                Log(Note::RestartOnRequest),
                ResetHistory,
                CountRestart,
                Answer,
            ],
            Next::Launch,
        ),
        (P::Starting | P::Running, C::Shutdown) => (
            &[StopProcess, RecordStopOnRequest, EnterStopped, Answer],
            Next::End,
        ),
        (P::Starting | P::Running, C::HandlesGone) => {
            (&[StopProcess, RecordStopOnRequest, EnterStopped], Next::End)
        }
        // Waiting to restart: the command cuts the wait short. The last
        // exit (the crash that caused the backoff) is kept.
        (P::Backoff, C::Stop) => (
            &[EnterStopped, Log(Note::StoppedDuringBackoff), Answer],
            Next::Idle,
        ),
        // Start restarts now; the restart history is kept, so the backoff
        // and the intensity cap still apply to the next crash.
        (P::Backoff, C::Start) => (
            &[Log(Note::RestartOnRequest), CountRestart, Answer],
            Next::Launch,
        ),
        (P::Backoff, C::Restart) => (
            &[
                Log(Note::RestartOnRequest),
                ResetHistory,
                CountRestart,
                Answer,
            ],
            Next::Launch,
        ),
        (P::Backoff, C::Shutdown) => (&[EnterStopped, Answer], Next::End),
        (P::Backoff, C::HandlesGone) => (&[EnterStopped], Next::End),
        // Stopped or failed: the status stays as it is unless a start is
        // asked for.
        (P::Idle, C::Stop) => (&[Answer], Next::Stay),
        (P::Idle, C::Start) => (
            &[Log(Note::StartOnRequest), ResetHistory, Answer],
            Next::Launch,
        ),
        (P::Idle, C::Restart) => (
            &[
                Log(Note::RestartOnRequest),
                ResetHistory,
                CountRestart,
                Answer,
            ],
            Next::Launch,
        ),
        (P::Idle, C::Shutdown) => (&[Answer], Next::End),
        (P::Idle, C::HandlesGone) => (&[], Next::End),
    };
    Transition { actions, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandKind as C;
    use Phase as P;

    /// The whole table, written out: every phase × every command.
    fn expected(phase: Phase, command: CommandKind) -> (Vec<Action>, Next) {
        let restart_now = vec![
            Log(Note::RestartOnRequest),
            ResetHistory,
            CountRestart,
            Answer,
        ];
        match (phase, command) {
            (P::Starting | P::Running, C::Stop) => (
                vec![StopProcess, RecordStopOnRequest, EnterStopped, Answer],
                Next::Idle,
            ),
            (P::Starting | P::Running, C::Start) => (vec![Answer], Next::Stay),
            (P::Starting | P::Running, C::Restart) => {
                let mut actions = vec![StopProcess];
                actions.extend(restart_now);
                (actions, Next::Launch)
            }
            (P::Starting | P::Running, C::Shutdown) => (
                vec![StopProcess, RecordStopOnRequest, EnterStopped, Answer],
                Next::End,
            ),
            (P::Starting | P::Running, C::HandlesGone) => (
                vec![StopProcess, RecordStopOnRequest, EnterStopped],
                Next::End,
            ),
            (P::Backoff, C::Stop) => (
                vec![EnterStopped, Log(Note::StoppedDuringBackoff), Answer],
                Next::Idle,
            ),
            (P::Backoff, C::Start) => (
                vec![Log(Note::RestartOnRequest), CountRestart, Answer],
                Next::Launch,
            ),
            (P::Backoff, C::Restart) => (restart_now, Next::Launch),
            (P::Backoff, C::Shutdown) => (vec![EnterStopped, Answer], Next::End),
            (P::Backoff, C::HandlesGone) => (vec![EnterStopped], Next::End),
            (P::Idle, C::Stop) => (vec![Answer], Next::Stay),
            (P::Idle, C::Start) => (
                vec![Log(Note::StartOnRequest), ResetHistory, Answer],
                Next::Launch,
            ),
            (P::Idle, C::Restart) => (restart_now, Next::Launch),
            (P::Idle, C::Shutdown) => (vec![Answer], Next::End),
            (P::Idle, C::HandlesGone) => (vec![], Next::End),
        }
    }

    #[test]
    fn every_phase_and_command_matches_the_table() {
        let mut checked = 0;
        for phase in Phase::ALL {
            for command in CommandKind::ALL {
                let got = transition(phase, command);
                let (actions, next) = expected(phase, command);
                assert_eq!(
                    (got.actions.to_vec(), got.next),
                    (actions, next),
                    "{phase:?} × {command:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 20);
    }

    #[test]
    fn every_command_is_answered_once_and_last() {
        for phase in Phase::ALL {
            for command in CommandKind::ALL {
                let actions = transition(phase, command).actions;
                let answers = actions.iter().filter(|action| **action == Answer).count();
                if command == C::HandlesGone {
                    assert_eq!(answers, 0, "{phase:?} × {command:?}: nobody to answer");
                } else {
                    assert_eq!(answers, 1, "{phase:?} × {command:?}");
                    assert_eq!(actions.last(), Some(&Answer), "{phase:?} × {command:?}");
                }
            }
        }
    }

    #[test]
    fn a_process_is_stopped_first_and_only_when_one_is_left_behind() {
        for phase in Phase::ALL {
            for command in CommandKind::ALL {
                let transition = transition(phase, command);
                let leaves = transition.next != Next::Stay;
                assert_eq!(
                    transition.stops_process(),
                    phase.has_process() && leaves,
                    "{phase:?} × {command:?}"
                );
                if transition.stops_process() {
                    assert_eq!(transition.actions.first(), Some(&StopProcess));
                    let stops = transition
                        .actions
                        .iter()
                        .filter(|action| **action == StopProcess)
                        .count();
                    assert_eq!(stops, 1);
                }
            }
        }
    }

    #[test]
    fn commands_mean_the_same_wherever_they_arrive() {
        for phase in Phase::ALL {
            // Shutdown and a lost channel always end the actor; Stop never
            // does, and always leaves it waiting for an operator.
            assert_eq!(transition(phase, C::Shutdown).next, Next::End);
            assert_eq!(transition(phase, C::HandlesGone).next, Next::End);
            assert!(matches!(
                transition(phase, C::Stop).next,
                Next::Idle | Next::Stay
            ));
            // Restart always clears the history and counts a restart.
            let restart = transition(phase, C::Restart);
            assert_eq!(restart.next, Next::Launch, "{phase:?}");
            assert!(restart.actions.contains(&ResetHistory), "{phase:?}");
            assert!(restart.actions.contains(&CountRestart), "{phase:?}");
            // Start never touches a process.
            assert!(!transition(phase, C::Start).stops_process(), "{phase:?}");
            // Leaving a phase with a process for idle or the end always says
            // it was stopped.
            for command in CommandKind::ALL {
                let transition = transition(phase, command);
                if matches!(transition.next, Next::Idle | Next::End) && phase != P::Idle {
                    assert!(
                        transition.actions.contains(&EnterStopped),
                        "{phase:?} × {command:?}"
                    );
                }
            }
        }
    }
}
