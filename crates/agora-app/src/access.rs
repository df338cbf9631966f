//! Who may see or act on which object: every access rule, in one place.
//!
//! - Others' objects are *not found*, never forbidden, so ids do not leak (SPEC §2).
//! - An owner and the agents it owns are one *party*: none of them may claim, run or review
//!   the others' work, as none may its own.
//! - Admin powers belong to accounts with the admin role, or to the local operator (the
//!   CLI, which holds the database itself).

use std::net::IpAddr;

use agora_core::{
    AccountId,
    account::{Account, AccountKind},
    task::{Relation, TaskKind, TaskStatus},
};
use agora_store::{Credential, Service, Task, WebhookDelivery, WebhookEndpoint};

use crate::error::{Error, Refusal, Result};

/// Who is acting: an account that proved itself with a credential, and where it called
/// from (named rate limits count per address).
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: Account,
    /// The credential presented; `None` when the account acts without one (a CLI helper).
    pub credential: Option<Credential>,
    pub ip: Option<IpAddr>,
}

impl Principal {
    pub fn id(&self) -> &AccountId {
        &self.account.id
    }
}

/// The power to administer: an admin account, or the local operator.
#[derive(Debug, Clone)]
pub struct Admin {
    actor: Option<AccountId>,
}

impl Admin {
    /// The principal's admin power; `FORBIDDEN` when it has the user role.
    pub fn of(p: &Principal) -> Result<Self> {
        if p.account.is_admin() {
            Ok(Self { actor: Some(p.account.id.clone()) })
        } else {
            Err(Refusal::AdminOnly.into())
        }
    }

    /// The operator at the machine (`agora admin …`): it already holds the database.
    pub fn operator() -> Self {
        Self { actor: None }
    }

    /// The admin account acting, for the record; `None` for the operator.
    pub fn actor(&self) -> Option<&AccountId> {
        self.actor.as_ref()
    }
}

/// The account a party is known by: an agent's owner, or the account itself.
pub fn party(account: &Account) -> &AccountId {
    account.owner_id.as_ref().unwrap_or(&account.id)
}

/// Whether two accounts are one party (see the module docs).
pub fn same_party(a: &Account, b: &Account) -> bool {
    party(a) == party(b)
}

/// Whether `who` may manage `target`: itself, or the owner of this agent.
pub fn manages(target: &Account, who: &AccountId) -> bool {
    &target.id == who || target.owner_id.as_ref() == Some(who)
}

/// How `who` relates to `task`, for the state machine.
pub fn relation(task: &Task, who: &AccountId) -> Relation {
    if &task.requester_id == who {
        Relation::Requester
    } else if task.assignee_id.as_ref() == Some(who) {
        Relation::Assignee
    } else {
        Relation::OtherAccount
    }
}

/// Whether `who` is the task's requester or assignee.
pub fn is_task_party(task: &Task, who: &AccountId) -> bool {
    &task.requester_id == who || task.assignee_id.as_ref() == Some(who)
}

/// Whether `who` may see `task`: its requester, its assignee, or anyone for an open bounty
/// (its terms, not its history).
pub fn may_see_task(task: &Task, who: &AccountId) -> bool {
    is_task_party(task, who) || (task.kind == TaskKind::Bounty && task.status == TaskStatus::Open)
}

/// The task if `who` may see it; absent and others' tasks alike are `NOT_FOUND`.
pub fn visible_task(task: Option<Task>, who: &AccountId) -> Result<Task> {
    task.filter(|t| may_see_task(t, who)).ok_or(Error::NotFound("task"))
}

/// Whether `who` may try to claim `task`: anyone who may see it, and also anyone while it
/// is being worked on, so that the losers of a race learn it was taken (409), not that it
/// vanished; a finished bounty stays hidden from strangers.
pub fn may_claim_task(task: &Task, who: &AccountId) -> bool {
    may_see_task(task, who) || matches!(task.status, TaskStatus::InProgress | TaskStatus::Delivered)
}

/// Refuses work for one's own party: `refusal` when `actor` and the work's owner are one.
pub fn not_own_party(actor: &Account, owner: &Account, refusal: Refusal) -> Result<()> {
    if same_party(actor, owner) { Err(refusal.into()) } else { Ok(()) }
}

/// Whether `who` may see `service`: anyone when it is published; whoever manages its agent
/// always.
pub fn may_see_service(service: &Service, agent: Option<&Account>, who: Option<&AccountId>) -> bool {
    service.published || who.is_some_and(|w| agent.is_some_and(|a| manages(a, w)))
}

/// Whether `who` may change `service`: whoever manages its agent.
pub fn may_manage_service(agent: Option<&Account>, who: &AccountId) -> bool {
    agent.is_some_and(|a| manages(a, who))
}

pub fn owns_endpoint(endpoint: &WebhookEndpoint, who: &AccountId) -> bool {
    &endpoint.account_id == who
}

pub fn owns_delivery(delivery: &WebhookDelivery, who: &AccountId) -> bool {
    &delivery.account_id == who
}

/// Only agents have an inbox.
pub fn require_agent(p: &Principal) -> Result<()> {
    if p.account.kind == AccountKind::Agent { Ok(()) } else { Err(Refusal::NotAnAgent.into()) }
}

/// Not found, for the object an access rule hides.
pub fn hidden(what: &'static str) -> Error {
    Error::NotFound(what)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use agora_core::{
        Timestamp,
        account::{Counters, Profile, Role},
        work::TaskTerms,
    };

    use super::*;

    fn account(kind: AccountKind, owner: Option<&AccountId>) -> Account {
        let now = Timestamp::now();
        Account {
            id: AccountId::generate(),
            kind,
            role: Role::User,
            name: "x".into(),
            email: None,
            owner_id: owner.cloned(),
            profile: Profile::default(),
            counters: Counters::default(),
            banned_at: None,
            owner_banned_at: None,
            last_seen_at: None,
            offline_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn an_owner_and_its_agents_are_one_party() {
        let owner = account(AccountKind::Human, None);
        let a = account(AccountKind::Agent, Some(&owner.id));
        let b = account(AccountKind::Agent, Some(&owner.id));
        let stranger = account(AccountKind::Agent, None);
        assert!(same_party(&owner, &a));
        assert!(same_party(&a, &owner));
        assert!(same_party(&a, &b), "sibling agents are one party");
        assert!(same_party(&stranger, &stranger));
        assert!(!same_party(&stranger, &a));
        assert!(not_own_party(&a, &owner, Refusal::OwnTask).is_err());
        assert!(not_own_party(&stranger, &owner, Refusal::OwnTask).is_ok());
    }

    #[test]
    fn tasks_are_seen_by_their_parties_and_open_bounties_by_all() {
        let (req, agent, other) = (AccountId::generate(), AccountId::generate(), AccountId::generate());
        let mut run = Task::new(TaskTerms::Chat, &req, "t".into(), Timestamp::now());
        run.assignee_id = Some(agent.clone());
        assert!(may_see_task(&run, &req) && may_see_task(&run, &agent));
        assert!(!may_see_task(&run, &other));
        assert_eq!(relation(&run, &agent), Relation::Assignee);
        assert_eq!(relation(&run, &other), Relation::OtherAccount);

        let bounty = agora_core::work::BountyTerms {
            short_description: "s".into(),
            penalty: 0,
            max_delivery_hours: 1,
            input_schema: serde_json::json!({}),
            output_schema: serde_json::json!({}),
        };
        let mut b = Task::new(TaskTerms::Bounty(bounty), &req, "b".into(), Timestamp::now());
        assert!(may_see_task(&b, &other), "an open bounty is public");
        b.status = TaskStatus::InProgress;
        b.assignee_id = Some(agent);
        assert!(!may_see_task(&b, &other), "a claimed one is not");
        assert!(may_claim_task(&b, &other), "but a late claimer learns it was taken");
        b.status = TaskStatus::Completed;
        assert!(!may_claim_task(&b, &other), "a finished one stays hidden");
    }

    #[test]
    fn admin_power_needs_the_role() {
        let mut a = account(AccountKind::Human, None);
        let p = Principal { account: a.clone(), credential: None, ip: None };
        assert!(matches!(Admin::of(&p), Err(Error::Refused(Refusal::AdminOnly))));
        a.role = Role::Admin;
        let admin = Admin::of(&Principal { account: a.clone(), credential: None, ip: None }).unwrap();
        assert_eq!(admin.actor(), Some(&a.id));
        assert_eq!(Admin::operator().actor(), None);
    }

    #[test]
    fn services_are_seen_when_published_or_by_their_managers() {
        let owner = account(AccountKind::Human, None);
        let agent = account(AccountKind::Agent, Some(&owner.id));
        let now = Timestamp::now();
        let mut s = Service {
            id: agora_core::ServiceId::generate(),
            agent_id: agent.id.clone(),
            terms: agora_core::work::ServiceTerms::apply(
                None,
                agora_core::work::ServiceInput {
                    name: Some("n".into()),
                    price: Some(1),
                    ..Default::default()
                },
                agora_core::money::MaxAmount::default(),
            )
            .unwrap(),
            currency: agora_core::money::Currency::from_trusted("PTS".into()),
            published: false,
            paid_count: 0,
            favorite_count: 0,
            total_revenue: 0,
            created_at: now,
            updated_at: now,
        };
        assert!(may_see_service(&s, Some(&agent), Some(&owner.id)));
        assert!(may_see_service(&s, Some(&agent), Some(&agent.id)));
        assert!(!may_see_service(&s, Some(&agent), Some(&AccountId::generate())));
        assert!(!may_see_service(&s, Some(&agent), None));
        s.published = true;
        assert!(may_see_service(&s, Some(&agent), None));
    }
}
