//! The task state machine (SPEC §1 principle 1, §3, §4): the only place that decides whether
//! a command may change a task and what the task becomes.
//!
//! Every kind of work (chat turn, service run, bounty, job, brief, step) is one task with the
//! statuses `open → queued → in_progress → delivered → completed` and the side exits
//! `failed`, `cancelled`, `expired`. [`apply`] is a pure function of the task's snapshot, how
//! the actor relates to the task, and the command; it returns the new status and the events
//! the caller appends to the event log in the same transaction, or a typed [`TaskError`].
//! Handlers and workers never write a status themselves.
//!
//! Time is not an input: the judgements that need a clock (a lease ran out, a deadline
//! passed, a bounty claim is overdue) are made by the caller, which then issues
//! [`Command::LeaseExpired`], [`Command::DeadlineExpired`] or [`Command::ReleaseClaim`]. This
//! keeps the machine total over its inputs and trivially testable.
//!
//! When several things are wrong, the error reported is decided in this order:
//!
//! 1. the task is terminal (`completed`, `failed`, `cancelled`, `expired`) → `TASK_FINISHED`;
//! 2. the actor may never issue this command on this task → `NOT_REQUESTER`, `NOT_ASSIGNEE`,
//!    `SYSTEM_ONLY`, or `CANNOT_CLAIM_OWN_TASK` for a poster claiming its own bounty;
//! 3. the task's kind never supports the command → `REVISION_NOT_SUPPORTED`, `NOT_A_BOUNTY`,
//!    `LEASE_NOT_APPLICABLE`;
//! 4. the task is in the wrong status for it → `TASK_NOT_OPEN`, `TASK_NOT_QUEUED`,
//!    `TASK_NOT_IN_PROGRESS`, `TASK_NOT_DELIVERED`, or `TASK_ALREADY_CLAIMED` when someone
//!    already holds the task.
//!
//! Terminal comes first because nothing about a finished task can be fixed by retrying with
//! another actor or later; actor before status so that an outsider learns nothing about a
//! task's progress from the error it gets.

use serde::Serialize;

use crate::error::ErrorKind;
pub use crate::event::EventType;

/// What kind of work a task is; kinds differ only in how the assignee is chosen and how
/// money settles (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Chat,
    Service,
    Bounty,
    Job,
    Brief,
    Step,
}

impl TaskKind {
    pub const ALL: [Self; 6] = [Self::Chat, Self::Service, Self::Bounty, Self::Job, Self::Brief, Self::Step];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Service => "service",
            Self::Bounty => "bounty",
            Self::Job => "job",
            Self::Brief => "brief",
            Self::Step => "step",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for an assignee.
    Open,
    /// Assigned, waiting in the assignee's inbox.
    Queued,
    /// Leased by the assignee.
    InProgress,
    /// Waiting for the requester's acceptance.
    Delivered,
    Completed,
    Failed,
    Cancelled,
    Expired,
}

impl TaskStatus {
    pub const ALL: [Self; 8] = [
        Self::Open,
        Self::Queued,
        Self::InProgress,
        Self::Delivered,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Delivered => "delivered",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A terminal task accepts no further command; only reading it remains.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled | Self::Expired)
    }
}

/// How the actor relates to the task. The caller computes it from the signed-in account and
/// the task's requester and assignee; the machine decides what each relation may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Requester,
    Assignee,
    /// A signed-in account that is neither the requester nor the assignee.
    OtherAccount,
    /// Background workers: lease expiry, auto-accept, deadlines, assignment.
    System,
}

impl Relation {
    pub const ALL: [Self; 4] = [Self::Requester, Self::Assignee, Self::OtherAccount, Self::System];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `open → queued`, by the system or by the requester naming the agent; the caller sets
    /// the assignee.
    Assign,
    /// `queued → in_progress` by the assignee (the inbox takes the lease); for a bounty also
    /// `open → in_progress` by another account, which becomes the assignee.
    Claim,
    /// `in_progress → in_progress` by the assignee; extends the lease.
    Progress,
    /// Any non-terminal status, by the requester or the assignee; no status change.
    Message,
    /// `in_progress → delivered` by the assignee; a chat turn goes straight to `completed`
    /// because it is paid on reply.
    Deliver,
    /// `queued | in_progress → failed`, by the assignee; a bounty reopens instead.
    Fail,
    /// `delivered → completed`, by the requester or the system (auto-accept).
    Accept,
    /// `delivered → in_progress`, by the requester; not for chat.
    RequestRevision,
    /// `open | queued → cancelled`, by the requester.
    Cancel,
    /// `in_progress → cancelled` by the requester, giving up on a revision whose deadline
    /// has passed (the caller judges "passed"); not for chat.
    CancelRevision,
    /// `delivered → failed` by the requester, refusing work whose worker can no longer
    /// stand behind it (the caller judges that: its worker was banned); not for chat.
    Reject,
    /// Bounty only: `in_progress → open` by the requester once the claim is overdue (the
    /// caller judges "overdue"); clears the assignee.
    ReleaseClaim,
    /// System: the lease on an `in_progress` task ran out. Chat and service fail; a step
    /// returns to `queued` for reassignment.
    LeaseExpired,
    /// System: `open | queued → expired`.
    DeadlineExpired,
    /// Job postings only: `open → completed`, by the requester or the system, when bidding
    /// closes with at least one hire (each hire is a task of its own; a posting closed
    /// without one is cancelled or expires instead).
    Fill,
    /// System: the assignee can no longer work (it was banned). Direct work (chat,
    /// service, a job's hire) fails and is refunded; open-market work (bounty, brief) in
    /// progress reopens without an assignee; a step returns to the queue for another agent.
    Withdraw,
}

impl Command {
    pub const ALL: [Self; 16] = [
        Self::Assign,
        Self::Claim,
        Self::Progress,
        Self::Message,
        Self::Deliver,
        Self::Fail,
        Self::Accept,
        Self::RequestRevision,
        Self::Cancel,
        Self::CancelRevision,
        Self::Reject,
        Self::ReleaseClaim,
        Self::LeaseExpired,
        Self::DeadlineExpired,
        Self::Fill,
        Self::Withdraw,
    ];
}

/// What the machine needs to know about a task; the rest of the row is not its business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub kind: TaskKind,
    pub status: TaskStatus,
}

/// The outcome of a legal command, for the caller to write in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub status: TaskStatus,
    /// Appended to the event log, in this order.
    pub events: Vec<EventType>,
    /// The task no longer has an assignee (a released bounty claim).
    pub clears_assignee: bool,
    /// The actor becomes the assignee (the first claim of a bounty).
    pub sets_assignee: bool,
}

impl Transition {
    fn to(status: TaskStatus, events: Vec<EventType>) -> Self {
        Self { status, events, clears_assignee: false, sets_assignee: false }
    }
}

/// The stable error codes [`apply`] can return, for callers that match on them.
pub mod codes {
    pub const TASK_NOT_OPEN: &str = "TASK_NOT_OPEN";
    pub const TASK_NOT_QUEUED: &str = "TASK_NOT_QUEUED";
    pub const TASK_ALREADY_CLAIMED: &str = "TASK_ALREADY_CLAIMED";
    pub const TASK_NOT_IN_PROGRESS: &str = "TASK_NOT_IN_PROGRESS";
    pub const TASK_NOT_DELIVERED: &str = "TASK_NOT_DELIVERED";
    pub const TASK_FINISHED: &str = "TASK_FINISHED";
    pub const CANNOT_CLAIM_OWN_TASK: &str = "CANNOT_CLAIM_OWN_TASK";
    pub const NOT_ASSIGNEE: &str = "NOT_ASSIGNEE";
    pub const NOT_REQUESTER: &str = "NOT_REQUESTER";
    pub const REVISION_NOT_SUPPORTED: &str = "REVISION_NOT_SUPPORTED";
    pub const NOT_A_BOUNTY: &str = "NOT_A_BOUNTY";
    pub const NOT_A_JOB: &str = "NOT_A_JOB";
    pub const SYSTEM_ONLY: &str = "SYSTEM_ONLY";
    pub const LEASE_NOT_APPLICABLE: &str = "LEASE_NOT_APPLICABLE";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TaskError {
    /// One of [`codes`].
    pub code: &'static str,
    pub message: &'static str,
    pub kind: ErrorKind,
}

impl TaskError {
    const fn new(code: &'static str, message: &'static str, kind: ErrorKind) -> Self {
        Self { code, message, kind }
    }

    const FINISHED: Self = Self::new(
        codes::TASK_FINISHED,
        "the task has finished and accepts no further commands",
        ErrorKind::BadRequest,
    );
    const NOT_REQUESTER: Self =
        Self::new(codes::NOT_REQUESTER, "only the task's requester may do this", ErrorKind::NotFound);
    const NOT_ASSIGNEE: Self =
        Self::new(codes::NOT_ASSIGNEE, "only the task's assignee may do this", ErrorKind::NotFound);
    const NOT_PARTY: Self = Self::new(
        codes::NOT_ASSIGNEE,
        "only the task's requester or assignee may message on it",
        ErrorKind::NotFound,
    );
    const SYSTEM_ONLY: Self =
        Self::new(codes::SYSTEM_ONLY, "only the system may do this", ErrorKind::NotFound);
    const OWN_BOUNTY: Self = Self::new(
        codes::CANNOT_CLAIM_OWN_TASK,
        "the poster of a bounty cannot claim it",
        ErrorKind::Forbidden,
    );
    const ALREADY_CLAIMED: Self =
        Self::new(codes::TASK_ALREADY_CLAIMED, "the task has already been claimed", ErrorKind::Conflict);
    const NO_REVISION: Self = Self::new(
        codes::REVISION_NOT_SUPPORTED,
        "a chat turn cannot be sent back for revision",
        ErrorKind::BadRequest,
    );
    const NOT_A_BOUNTY: Self =
        Self::new(codes::NOT_A_BOUNTY, "only a bounty's claim can be released", ErrorKind::BadRequest);
    const NOT_A_JOB: Self =
        Self::new(codes::NOT_A_JOB, "only a job posting is filled by its hires", ErrorKind::BadRequest);
    const NO_LEASE: Self = Self::new(
        codes::LEASE_NOT_APPLICABLE,
        "bounties, jobs and briefs run on deadlines, not leases",
        ErrorKind::BadRequest,
    );
    const NOT_OPEN: Self = Self::new(codes::TASK_NOT_OPEN, "the task is not open", ErrorKind::BadRequest);
    const NOT_OPEN_OR_QUEUED: Self = Self::new(
        codes::TASK_NOT_OPEN,
        "only an open or queued task can be cancelled or expire",
        ErrorKind::BadRequest,
    );
    const NOT_QUEUED: Self =
        Self::new(codes::TASK_NOT_QUEUED, "the task is not waiting for pickup", ErrorKind::BadRequest);
    const NOT_IN_PROGRESS: Self =
        Self::new(codes::TASK_NOT_IN_PROGRESS, "the task is not in progress", ErrorKind::BadRequest);
    const NOT_QUEUED_OR_IN_PROGRESS: Self = Self::new(
        codes::TASK_NOT_IN_PROGRESS,
        "only a queued or in-progress task can fail",
        ErrorKind::BadRequest,
    );
    const NOT_DELIVERED: Self = Self::new(
        codes::TASK_NOT_DELIVERED,
        "the task has no delivery waiting for review",
        ErrorKind::BadRequest,
    );
}

/// The status a new task of `kind` starts in. Chat turns and service runs name their agent
/// and steps their department at creation, so they start assigned; the others wait for an
/// assignee to be chosen.
pub const fn create_status(kind: TaskKind) -> TaskStatus {
    match kind {
        TaskKind::Chat | TaskKind::Service | TaskKind::Step => TaskStatus::Queued,
        TaskKind::Bounty | TaskKind::Job | TaskKind::Brief => TaskStatus::Open,
    }
}

/// The events that announce a new task of `kind`, in order.
pub fn create_events(kind: TaskKind) -> Vec<EventType> {
    match create_status(kind) {
        TaskStatus::Queued => vec![EventType::TaskCreated, EventType::TaskAssigned],
        _ => vec![EventType::TaskCreated],
    }
}

/// Decides `command` by `actor` on `task`: the new status and its events, or why not. See the
/// module docs for which error wins when several apply.
pub fn apply(task: &TaskSnapshot, actor: Relation, command: Command) -> Result<Transition, TaskError> {
    use EventType as E;
    use TaskStatus as S;

    if task.status.is_terminal() {
        return Err(TaskError::FINISHED);
    }
    let status = task.status;
    let is_bounty = task.kind == TaskKind::Bounty;

    match command {
        Command::Assign => {
            // The requester "assigns" when it names the agent (a hired bid); everything else
            // (matching, the AI team's planner) is a worker.
            require(matches!(actor, Relation::System | Relation::Requester), TaskError::SYSTEM_ONLY)?;
            require(status == S::Open, TaskError::NOT_OPEN)?;
            Ok(Transition::to(S::Queued, vec![E::TaskAssigned]))
        }
        Command::Claim => match actor {
            Relation::Assignee => match status {
                S::Queued => Ok(Transition::to(S::InProgress, vec![E::TaskClaimed])),
                S::Open => Err(TaskError::NOT_QUEUED),
                _ => Err(TaskError::ALREADY_CLAIMED),
            },
            // A bounty is first come, first served: the first other account to claim it
            // becomes its assignee; the rest get 409.
            Relation::OtherAccount if is_bounty => {
                require(status == S::Open, TaskError::ALREADY_CLAIMED)?;
                Ok(Transition { sets_assignee: true, ..Transition::to(S::InProgress, vec![E::TaskClaimed]) })
            }
            Relation::Requester if is_bounty => Err(TaskError::OWN_BOUNTY),
            Relation::Requester | Relation::OtherAccount | Relation::System => Err(TaskError::NOT_ASSIGNEE),
        },
        Command::Progress => {
            require(actor == Relation::Assignee, TaskError::NOT_ASSIGNEE)?;
            require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
            Ok(Transition::to(S::InProgress, vec![E::TaskProgress]))
        }
        Command::Message => {
            require(matches!(actor, Relation::Requester | Relation::Assignee), TaskError::NOT_PARTY)?;
            Ok(Transition::to(status, vec![E::MessageReceived]))
        }
        Command::Deliver => {
            require(actor == Relation::Assignee, TaskError::NOT_ASSIGNEE)?;
            require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
            if task.kind == TaskKind::Chat {
                Ok(Transition::to(S::Completed, vec![E::TaskDelivered, E::TaskCompleted]))
            } else {
                Ok(Transition::to(S::Delivered, vec![E::TaskDelivered]))
            }
        }
        Command::Fail => {
            require(actor == Relation::Assignee, TaskError::NOT_ASSIGNEE)?;
            require(matches!(status, S::Queued | S::InProgress), TaskError::NOT_QUEUED_OR_IN_PROGRESS)?;
            if is_bounty {
                // A claimer giving up must not end the poster's bounty (anyone can claim one):
                // it reopens for the next claimer.
                require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
                Ok(Transition { clears_assignee: true, ..Transition::to(S::Open, vec![E::TaskReopened]) })
            } else {
                Ok(Transition::to(S::Failed, vec![E::TaskFailed]))
            }
        }
        Command::Accept => {
            require(matches!(actor, Relation::Requester | Relation::System), TaskError::NOT_REQUESTER)?;
            require(status == S::Delivered, TaskError::NOT_DELIVERED)?;
            Ok(Transition::to(S::Completed, vec![E::TaskCompleted]))
        }
        Command::RequestRevision => {
            require(actor == Relation::Requester, TaskError::NOT_REQUESTER)?;
            require(task.kind != TaskKind::Chat, TaskError::NO_REVISION)?;
            require(status == S::Delivered, TaskError::NOT_DELIVERED)?;
            Ok(Transition::to(S::InProgress, vec![E::TaskRevisionRequested]))
        }
        Command::Cancel => {
            require(actor == Relation::Requester, TaskError::NOT_REQUESTER)?;
            require(matches!(status, S::Open | S::Queued), TaskError::NOT_OPEN_OR_QUEUED)?;
            Ok(Transition::to(S::Cancelled, vec![E::TaskCancelled]))
        }
        Command::CancelRevision => {
            require(actor == Relation::Requester, TaskError::NOT_REQUESTER)?;
            require(task.kind != TaskKind::Chat, TaskError::NO_REVISION)?;
            require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
            Ok(Transition::to(S::Cancelled, vec![E::TaskCancelled]))
        }
        Command::Reject => {
            require(actor == Relation::Requester, TaskError::NOT_REQUESTER)?;
            require(task.kind != TaskKind::Chat, TaskError::NO_REVISION)?;
            require(status == S::Delivered, TaskError::NOT_DELIVERED)?;
            Ok(Transition::to(S::Failed, vec![E::TaskFailed]))
        }
        Command::ReleaseClaim => {
            require(actor == Relation::Requester, TaskError::NOT_REQUESTER)?;
            require(is_bounty, TaskError::NOT_A_BOUNTY)?;
            require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
            Ok(Transition { clears_assignee: true, ..Transition::to(S::Open, vec![E::TaskReopened]) })
        }
        Command::LeaseExpired => {
            require(actor == Relation::System, TaskError::SYSTEM_ONLY)?;
            let (to, event) = match task.kind {
                TaskKind::Chat | TaskKind::Service => (S::Failed, E::TaskFailed),
                // A step goes back to the queue. The assignee is kept rather than cleared
                // because a queued task always has one; the department replaces it with the
                // next agent in the same transaction.
                TaskKind::Step => (S::Queued, E::TaskAssigned),
                TaskKind::Bounty | TaskKind::Job | TaskKind::Brief => return Err(TaskError::NO_LEASE),
            };
            require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
            Ok(Transition::to(to, vec![event]))
        }
        Command::DeadlineExpired => {
            require(actor == Relation::System, TaskError::SYSTEM_ONLY)?;
            require(matches!(status, S::Open | S::Queued), TaskError::NOT_OPEN_OR_QUEUED)?;
            Ok(Transition::to(S::Expired, vec![E::TaskExpired]))
        }
        Command::Fill => {
            require(matches!(actor, Relation::Requester | Relation::System), TaskError::NOT_REQUESTER)?;
            require(task.kind == TaskKind::Job, TaskError::NOT_A_JOB)?;
            require(status == S::Open, TaskError::NOT_OPEN)?;
            Ok(Transition::to(S::Completed, vec![E::TaskCompleted]))
        }
        Command::Withdraw => {
            require(actor == Relation::System, TaskError::SYSTEM_ONLY)?;
            match task.kind {
                // Work that names its worker (a chat turn, a service run, a job's hire: the
                // posting itself never has an assignee) fails and is refunded.
                TaskKind::Chat | TaskKind::Service | TaskKind::Job => {
                    require(
                        matches!(status, S::Queued | S::InProgress),
                        TaskError::NOT_QUEUED_OR_IN_PROGRESS,
                    )?;
                    Ok(Transition::to(S::Failed, vec![E::TaskFailed]))
                }
                TaskKind::Step => {
                    require(
                        matches!(status, S::Queued | S::InProgress),
                        TaskError::NOT_QUEUED_OR_IN_PROGRESS,
                    )?;
                    Ok(Transition::to(S::Queued, vec![E::TaskAssigned]))
                }
                TaskKind::Bounty | TaskKind::Brief => {
                    require(status == S::InProgress, TaskError::NOT_IN_PROGRESS)?;
                    Ok(Transition { clears_assignee: true, ..Transition::to(S::Open, vec![E::TaskReopened]) })
                }
            }
        }
    }
}

fn require(holds: bool, err: TaskError) -> Result<(), TaskError> {
    if holds { Ok(()) } else { Err(err) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use Command::*;
    use EventType as E;
    use Relation::{Assignee, OtherAccount, Requester, System};
    use TaskKind::{Bounty, Brief, Chat, Job, Service, Step};
    use TaskStatus::{Cancelled, Completed, Delivered, Expired, Failed, InProgress, Open, Queued};

    const ANY: &[TaskKind] = &[Chat, Service, Bounty, Job, Brief, Step];
    const NOT_CHAT: &[TaskKind] = &[Service, Bounty, Job, Brief, Step];
    const NOT_BOUNTY: &[TaskKind] = &[Chat, Service, Job, Brief, Step];

    /// One legal transition: for these kinds, from this status, this actor, this command →
    /// this status with these events. Written out literally, independently of `apply`.
    type Row = (&'static [TaskKind], TaskStatus, Relation, Command, TaskStatus, &'static [EventType]);

    const LEGAL: &[Row] = &[
        (ANY, Open, System, Assign, Queued, &[E::TaskAssigned]),
        (ANY, Open, Requester, Assign, Queued, &[E::TaskAssigned]),
        (ANY, Queued, Assignee, Claim, InProgress, &[E::TaskClaimed]),
        (&[Bounty], Open, OtherAccount, Claim, InProgress, &[E::TaskClaimed]),
        (ANY, InProgress, Assignee, Progress, InProgress, &[E::TaskProgress]),
        (ANY, Open, Requester, Message, Open, &[E::MessageReceived]),
        (ANY, Open, Assignee, Message, Open, &[E::MessageReceived]),
        (ANY, Queued, Requester, Message, Queued, &[E::MessageReceived]),
        (ANY, Queued, Assignee, Message, Queued, &[E::MessageReceived]),
        (ANY, InProgress, Requester, Message, InProgress, &[E::MessageReceived]),
        (ANY, InProgress, Assignee, Message, InProgress, &[E::MessageReceived]),
        (ANY, Delivered, Requester, Message, Delivered, &[E::MessageReceived]),
        (ANY, Delivered, Assignee, Message, Delivered, &[E::MessageReceived]),
        (NOT_CHAT, InProgress, Assignee, Deliver, Delivered, &[E::TaskDelivered]),
        (&[Chat], InProgress, Assignee, Deliver, Completed, &[E::TaskDelivered, E::TaskCompleted]),
        (NOT_BOUNTY, Queued, Assignee, Fail, Failed, &[E::TaskFailed]),
        (NOT_BOUNTY, InProgress, Assignee, Fail, Failed, &[E::TaskFailed]),
        (&[Bounty], InProgress, Assignee, Fail, Open, &[E::TaskReopened]),
        (ANY, Delivered, Requester, Accept, Completed, &[E::TaskCompleted]),
        (ANY, Delivered, System, Accept, Completed, &[E::TaskCompleted]),
        (NOT_CHAT, Delivered, Requester, RequestRevision, InProgress, &[E::TaskRevisionRequested]),
        (ANY, Open, Requester, Cancel, Cancelled, &[E::TaskCancelled]),
        (ANY, Queued, Requester, Cancel, Cancelled, &[E::TaskCancelled]),
        (NOT_CHAT, InProgress, Requester, CancelRevision, Cancelled, &[E::TaskCancelled]),
        (NOT_CHAT, Delivered, Requester, Reject, Failed, &[E::TaskFailed]),
        (&[Bounty], InProgress, Requester, ReleaseClaim, Open, &[E::TaskReopened]),
        (&[Chat, Service], InProgress, System, LeaseExpired, Failed, &[E::TaskFailed]),
        (&[Step], InProgress, System, LeaseExpired, Queued, &[E::TaskAssigned]),
        (ANY, Open, System, DeadlineExpired, Expired, &[E::TaskExpired]),
        (&[Job], Open, Requester, Fill, Completed, &[E::TaskCompleted]),
        (&[Job], Open, System, Fill, Completed, &[E::TaskCompleted]),
        (ANY, Queued, System, DeadlineExpired, Expired, &[E::TaskExpired]),
        (&[Chat, Service, Job], Queued, System, Withdraw, Failed, &[E::TaskFailed]),
        (&[Chat, Service, Job], InProgress, System, Withdraw, Failed, &[E::TaskFailed]),
        (&[Step], Queued, System, Withdraw, Queued, &[E::TaskAssigned]),
        (&[Step], InProgress, System, Withdraw, Queued, &[E::TaskAssigned]),
        (&[Bounty, Brief], InProgress, System, Withdraw, Open, &[E::TaskReopened]),
    ];

    fn legal(kind: TaskKind, from: TaskStatus, actor: Relation, cmd: Command) -> Option<&'static Row> {
        let mut hits =
            LEGAL.iter().filter(|r| r.0.contains(&kind) && r.1 == from && r.2 == actor && r.3 == cmd);
        let hit = hits.next();
        assert!(hits.next().is_none(), "table lists {kind:?} {from:?} {actor:?} {cmd:?} twice");
        hit
    }

    /// Every code a refusal may carry, with the kind it must have.
    const REFUSALS: &[(&str, ErrorKind)] = &[
        ("TASK_NOT_OPEN", ErrorKind::BadRequest),
        ("TASK_NOT_QUEUED", ErrorKind::BadRequest),
        ("TASK_NOT_IN_PROGRESS", ErrorKind::BadRequest),
        ("TASK_NOT_DELIVERED", ErrorKind::BadRequest),
        ("TASK_FINISHED", ErrorKind::BadRequest),
        ("REVISION_NOT_SUPPORTED", ErrorKind::BadRequest),
        ("NOT_A_BOUNTY", ErrorKind::BadRequest),
        ("NOT_A_JOB", ErrorKind::BadRequest),
        ("LEASE_NOT_APPLICABLE", ErrorKind::BadRequest),
        ("TASK_ALREADY_CLAIMED", ErrorKind::Conflict),
        ("CANNOT_CLAIM_OWN_TASK", ErrorKind::Forbidden),
        ("NOT_ASSIGNEE", ErrorKind::NotFound),
        ("NOT_REQUESTER", ErrorKind::NotFound),
        ("SYSTEM_ONLY", ErrorKind::NotFound),
    ];

    fn err(kind: TaskKind, status: TaskStatus, actor: Relation, cmd: Command) -> TaskError {
        apply(&TaskSnapshot { kind, status }, actor, cmd).expect_err("should be refused")
    }

    #[test]
    fn every_combination_follows_the_table_of_legal_transitions() {
        let mut legal_seen = 0;
        let mut combinations = 0;
        for kind in TaskKind::ALL {
            for status in TaskStatus::ALL {
                for actor in Relation::ALL {
                    for cmd in Command::ALL {
                        combinations += 1;
                        let case = format!("{kind:?} {status:?} {actor:?} {cmd:?}");
                        let got = apply(&TaskSnapshot { kind, status }, actor, cmd);
                        match (legal(kind, status, actor, cmd), got) {
                            (Some(row), Ok(t)) => {
                                legal_seen += 1;
                                assert_eq!(t.status, row.4, "{case}");
                                assert_eq!(t.events, row.5, "{case}");
                                let claims_bounty = kind == Bounty && actor == OtherAccount && cmd == Claim;
                                assert_eq!(t.sets_assignee, claims_bounty, "{case}");
                                let reopens = cmd == ReleaseClaim
                                    || (matches!(cmd, Withdraw | Fail) && t.status == Open);
                                assert_eq!(t.clears_assignee, reopens, "{case}");
                            }
                            (Some(_), Err(e)) => panic!("{case}: legal but refused with {e}"),
                            (None, Ok(t)) => panic!("{case}: illegal but went to {:?}", t.status),
                            (None, Err(e)) => {
                                let Some(&(_, kind)) = REFUSALS.iter().find(|(c, _)| *c == e.code) else {
                                    panic!("{case}: unknown code {}", e.code)
                                };
                                assert_eq!(e.kind, kind, "{case}: {}", e.code);
                                if status.is_terminal() {
                                    assert_eq!(e.code, "TASK_FINISHED", "{case}");
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(combinations, 6 * 8 * 4 * 16);
        let expected_legal: usize = LEGAL.iter().map(|r| r.0.len()).sum();
        assert_eq!(legal_seen, expected_legal, "every legal row was exercised");
    }

    #[test]
    fn accept_before_delivery_is_task_not_delivered() {
        let e = err(Service, InProgress, Requester, Accept);
        assert_eq!((e.code, e.kind), ("TASK_NOT_DELIVERED", ErrorKind::BadRequest));
    }

    #[test]
    fn second_claim_is_task_already_claimed() {
        let first = apply(&TaskSnapshot { kind: Service, status: Queued }, Assignee, Claim).unwrap();
        assert_eq!(first.status, InProgress);
        let e = err(Service, first.status, Assignee, Claim);
        assert_eq!((e.code, e.kind), ("TASK_ALREADY_CLAIMED", ErrorKind::Conflict));

        // The losers of a bounty race get the same answer.
        let won = apply(&TaskSnapshot { kind: Bounty, status: Open }, OtherAccount, Claim).unwrap();
        assert!(won.sets_assignee);
        let e = err(Bounty, won.status, OtherAccount, Claim);
        assert_eq!((e.code, e.kind), ("TASK_ALREADY_CLAIMED", ErrorKind::Conflict));
    }

    #[test]
    fn requester_claiming_own_bounty_is_cannot_claim_own_task() {
        let e = err(Bounty, Open, Requester, Claim);
        assert_eq!((e.code, e.kind), ("CANNOT_CLAIM_OWN_TASK", ErrorKind::Forbidden));
    }

    #[test]
    fn anything_on_a_completed_task_is_task_finished() {
        for kind in TaskKind::ALL {
            for actor in Relation::ALL {
                for cmd in Command::ALL {
                    assert_eq!(
                        err(kind, Completed, actor, cmd).code,
                        "TASK_FINISHED",
                        "{kind:?} {actor:?} {cmd:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn chat_deliver_completes_the_turn() {
        let t = apply(&TaskSnapshot { kind: Chat, status: InProgress }, Assignee, Deliver).unwrap();
        assert_eq!(t.status, Completed);
        assert_eq!(t.events, [E::TaskDelivered, E::TaskCompleted]);
        assert_eq!(err(Chat, Delivered, Requester, RequestRevision).code, "REVISION_NOT_SUPPORTED");
    }

    #[test]
    fn step_lease_expiry_requeues_and_others_follow_their_rules() {
        let t = apply(&TaskSnapshot { kind: Step, status: InProgress }, System, LeaseExpired).unwrap();
        assert_eq!(
            (t.status, t.events.as_slice(), t.clears_assignee),
            (Queued, &[E::TaskAssigned][..], false)
        );
        let t = apply(&TaskSnapshot { kind: Chat, status: InProgress }, System, LeaseExpired).unwrap();
        assert_eq!(t.status, Failed);
        for kind in [Bounty, Job, Brief] {
            assert_eq!(err(kind, InProgress, System, LeaseExpired).code, "LEASE_NOT_APPLICABLE");
        }
        assert_eq!(err(Step, InProgress, Assignee, LeaseExpired).code, "SYSTEM_ONLY");
    }

    #[test]
    fn actor_checks_come_before_kind_and_status_checks() {
        // A stranger learns nothing about the task's state from the error.
        assert_eq!(err(Job, Open, OtherAccount, Accept).code, "NOT_REQUESTER");
        assert_eq!(err(Job, InProgress, Assignee, ReleaseClaim).code, "NOT_REQUESTER");
        assert_eq!(err(Job, InProgress, Requester, ReleaseClaim).code, "NOT_A_BOUNTY");
        assert_eq!(err(Bounty, Delivered, Requester, ReleaseClaim).code, "TASK_NOT_IN_PROGRESS");
        assert_eq!(err(Service, Queued, OtherAccount, Claim).code, "NOT_ASSIGNEE");
        assert_eq!(err(Chat, Delivered, Assignee, RequestRevision).code, "NOT_REQUESTER");
        assert_eq!(err(Brief, Expired, OtherAccount, Message).code, "TASK_FINISHED");
    }

    #[test]
    fn bounty_release_reopens_without_an_assignee() {
        let t = apply(&TaskSnapshot { kind: Bounty, status: InProgress }, Requester, ReleaseClaim).unwrap();
        assert_eq!((t.status, t.clears_assignee, t.sets_assignee), (Open, true, false));
    }

    #[test]
    fn creation_starts_assigned_kinds_queued_and_the_rest_open() {
        for (kind, status, events) in [
            (Chat, Queued, &[E::TaskCreated, E::TaskAssigned][..]),
            (Service, Queued, &[E::TaskCreated, E::TaskAssigned]),
            (Step, Queued, &[E::TaskCreated, E::TaskAssigned]),
            (Bounty, Open, &[E::TaskCreated]),
            (Job, Open, &[E::TaskCreated]),
            (Brief, Open, &[E::TaskCreated]),
        ] {
            assert_eq!(create_status(kind), status, "{kind:?}");
            assert_eq!(create_events(kind), events, "{kind:?}");
        }
    }

    #[test]
    fn names_round_trip_and_match_the_spec() {
        for k in TaskKind::ALL {
            assert_eq!(TaskKind::parse(k.as_str()), Some(k));
        }
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
        }
        assert_eq!(TaskStatus::InProgress.as_str(), "in_progress");
        assert_eq!(EventType::TaskRevisionRequested.as_str(), "task.revision_requested");
        assert_eq!(EventType::MessageReceived.as_str(), "message.received");
        assert_eq!(TaskKind::parse("Chat"), None);
        let terminal: Vec<_> = TaskStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [Completed, Failed, Cancelled, Expired]);
    }
}
