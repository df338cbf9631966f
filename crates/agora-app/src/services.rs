//! Services (AgentFlow): an agent publishes a service with a price and JSON Schemas for its
//! input and output; requesters search and run it. A run is a `service` task in the agent's
//! inbox, its price held in escrow until the requester accepts the delivery (or the system
//! does, after the auto-accept delay).

use agora_core::{
    AccountId, Invalid, ServiceId,
    account::{Account, AccountKind, ONLINE_WINDOW_SECS},
    money::Currency,
    schema,
    work::{ServiceInput, ServiceRun, ServiceTerms, TaskTerms, document},
};
use agora_store::{Page, Service, ServiceQuery, ServiceSort, Task};
use serde_json::Value;

use crate::{
    App, Principal, Uncommitted, access, engine,
    error::{Error, Refusal, Result},
};

/// Which services a search shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Availability {
    /// Only those whose agent is online (the default of every search).
    #[default]
    Online,
    All,
}

/// A search of the published services.
#[derive(Debug, Clone, Default)]
pub struct ServiceSearch {
    /// Words to look for in names and descriptions (trimmed; blank is none).
    pub text: Option<String>,
    pub availability: Availability,
    /// Only services priced in this currency.
    pub currency: Option<Currency>,
    pub sort: ServiceSort,
    pub offset: u64,
    pub limit: u64,
}

/// The longest search text.
pub const MAX_SEARCH_TEXT: usize = 200;

impl ServiceSearch {
    /// Trims the search text (blank means none) and bounds its length.
    pub fn text(raw: Option<String>) -> Result<Option<String>, Invalid> {
        let text = raw.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_SEARCH_TEXT) {
            return Err(Invalid::field("q", format!("must be at most {MAX_SEARCH_TEXT} characters")));
        }
        Ok(text)
    }
}

/// A service with the agent that runs it (and its owner, the provider), and whether the
/// viewer marked it a favourite (when known).
#[derive(Debug, Clone)]
pub struct ServiceView {
    pub service: Service,
    pub agent: Option<Account>,
    pub provider: Option<Account>,
    pub favorite: Option<bool>,
}

/// A new service's terms, as they arrive.
#[derive(Debug, Clone, Default)]
pub struct NewService {
    /// The agent that runs it: the calling agent itself when `None`.
    pub agent_id: Option<AccountId>,
    pub terms: ServiceInput,
    pub currency: Option<String>,
    pub published: Option<bool>,
}

impl App {
    /// Publishes a service run by the calling agent, or by an agent the principal owns.
    pub async fn publish_service(&self, p: &Principal, new: NewService) -> Result<Uncommitted<ServiceView>> {
        let mut inv = Invalid::default();
        let terms = inv.collect("", ServiceTerms::apply(None, new.terms, self.settings().max_amount));
        let currency = inv
            .collect("currency", self.settings().currencies.parse(new.currency.as_deref().unwrap_or("PTS")));
        let agent_id = match new.agent_id {
            Some(id) => Some(id),
            None if p.account.kind == AccountKind::Agent => Some(p.id().clone()),
            None => {
                inv.push("agent_id", "is required unless an agent publishes its own service");
                None
            }
        };
        let (Some(terms), Some(currency), Some(agent_id), true) =
            (terms, currency, agent_id, inv.0.is_empty())
        else {
            return Err(inv.into());
        };
        let mut tx = self.begin().await?;
        let agent = tx
            .account(&agent_id)
            .await?
            .filter(|a| a.kind == AccountKind::Agent && access::manages(a, p.id()))
            .ok_or(Error::NotFound("agent"))?;
        let now = self.now();
        let service = Service {
            id: ServiceId::generate(),
            agent_id: agent.id.clone(),
            terms,
            currency,
            published: new.published.unwrap_or(true),
            paid_count: 0,
            favorite_count: 0,
            total_revenue: 0,
            created_at: now,
            updated_at: now,
        };
        tx.insert_service(&service).await?;
        Ok(self.uncommitted(
            tx,
            ServiceView { service, agent: Some(agent), provider: None, favorite: Some(false) },
        ))
    }

    /// Changes a service the principal manages (not found otherwise): `edit` applies to the
    /// row as locked in this transaction, so concurrent changes do not undo each other.
    pub async fn edit_service(
        &self,
        p: &Principal,
        id: &ServiceId,
        edit: impl FnOnce(&mut Service, &App) -> Result<(), Invalid> + Send,
    ) -> Result<Uncommitted<ServiceView>> {
        let mut tx = self.begin().await?;
        let mut service = tx.service_for_update(id).await?.ok_or(Error::NotFound("service"))?;
        let agent = tx.account(&service.agent_id).await?;
        if !access::may_manage_service(agent.as_ref(), p.id()) {
            return Err(Error::NotFound("service"));
        }
        edit(&mut service, self)?;
        service.updated_at = self.now();
        tx.update_service(&service).await?;
        Ok(self.uncommitted(tx, ServiceView { service, agent, provider: None, favorite: None }))
    }

    /// Changes a service's terms, currency or publication; absent fields are kept. Runs
    /// already started keep the terms they started with.
    pub async fn update_service(
        &self,
        p: &Principal,
        id: &ServiceId,
        terms: ServiceInput,
        currency: Option<String>,
        published: Option<bool>,
    ) -> Result<Uncommitted<ServiceView>> {
        self.edit_service(p, id, |current, app| {
            let mut inv = Invalid::default();
            let terms =
                inv.collect("", ServiceTerms::apply(Some(&current.terms), terms, self.settings().max_amount));
            let currency = match &currency {
                Some(c) => inv.collect("currency", app.settings().currencies.parse(c)),
                None => Some(current.currency.clone()),
            };
            let (Some(terms), Some(currency)) = (terms, currency) else { return Err(inv) };
            current.terms = terms;
            current.currency = currency;
            current.published = published.unwrap_or(current.published);
            Ok(())
        })
        .await
    }

    /// Publishes or unpublishes a service: unpublished, it is hidden from search and not
    /// runnable; its history stays.
    pub async fn publish(&self, p: &Principal, id: &ServiceId, on: bool) -> Result<Uncommitted<ServiceView>> {
        self.edit_service(p, id, |s, _| {
            s.published = on;
            Ok(())
        })
        .await
    }

    /// Published services matching a search, with their agents.
    pub async fn search_services(&self, q: &ServiceSearch) -> Result<Page<ServiceView>> {
        let online_since = match q.availability {
            Availability::Online => Some(self.now().plus_seconds(-ONLINE_WINDOW_SECS)),
            Availability::All => None,
        };
        let query = ServiceQuery {
            text: q.text.clone(),
            online_since,
            agent: None,
            currency: q.currency.clone(),
            sort: q.sort,
            offset: q.offset,
            limit: q.limit,
        };
        self.service_views(query).await
    }

    /// Every service of one agent the principal manages (or is), published or not.
    pub async fn agent_services(&self, p: &Principal, agent: &AccountId) -> Result<Vec<Service>> {
        let mut read = self.store().read();
        let a = read.account(agent).await?.ok_or(Error::NotFound("agent"))?;
        if !access::manages(&a, p.id()) {
            return Err(Error::NotFound("agent"));
        }
        let mut all = Vec::new();
        loop {
            let found = read
                .services(&ServiceQuery {
                    agent: Some(agent.clone()),
                    offset: all.len() as u64,
                    limit: 100,
                    ..Default::default()
                })
                .await?;
            let done = found.items.len() < 100;
            all.extend(found.items);
            if done {
                return Ok(all);
            }
        }
    }

    async fn service_views(&self, query: ServiceQuery) -> Result<Page<ServiceView>> {
        let mut read = self.store().read();
        let found = read.services(&query).await?;
        let mut ids: Vec<AccountId> = found.items.iter().map(|s| s.agent_id.clone()).collect();
        let agents = read.accounts(&ids).await?;
        ids = agents.iter().filter_map(|a| a.owner_id.clone()).collect();
        let owners = read.accounts(&ids).await?;
        let items = found
            .items
            .into_iter()
            .map(|service| {
                let agent = agents.iter().find(|a| a.id == service.agent_id).cloned();
                let provider = provider_of(agent.as_ref(), &owners);
                ServiceView { service, agent, provider, favorite: None }
            })
            .collect();
        Ok(Page { items, total: found.total })
    }

    /// One service: published ones for everyone, unpublished ones only for whoever manages
    /// its agent; with whether the viewer favours it.
    pub async fn service(&self, viewer: Option<&Principal>, id: &ServiceId) -> Result<ServiceView> {
        let mut read = self.store().read();
        let service = read.service(id).await?.ok_or(Error::NotFound("service"))?;
        let agent = read.account(&service.agent_id).await?;
        if !access::may_see_service(&service, agent.as_ref(), viewer.map(Principal::id)) {
            return Err(Error::NotFound("service"));
        }
        let owners = match agent.as_ref().and_then(|a| a.owner_id.clone()) {
            Some(owner) => read.accounts(&[owner]).await?,
            None => Vec::new(),
        };
        let favorite = match viewer {
            Some(v) => Some(read.is_favorite(&service.id, v.id()).await?),
            None => None,
        };
        let provider = provider_of(agent.as_ref(), &owners);
        Ok(ServiceView { service, agent, provider, favorite })
    }

    /// Marks (`on`) or unmarks a visible service as a favourite; idempotent. The service
    /// and its favourite count afterwards.
    pub async fn set_favorite(
        &self,
        p: &Principal,
        id: &ServiceId,
        on: bool,
    ) -> Result<Uncommitted<(ServiceId, i64)>> {
        let mut tx = self.begin().await?;
        let service = tx.service(id).await?.ok_or(Error::NotFound("service"))?;
        let agent = tx.account(&service.agent_id).await?;
        if !access::may_see_service(&service, agent.as_ref(), Some(p.id())) {
            return Err(Error::NotFound("service"));
        }
        tx.set_favorite(&service.id, p.id(), on, self.now()).await?;
        let count = tx.service(id).await?.map_or(0, |s| s.favorite_count);
        Ok(self.uncommitted(tx, (service.id, count)))
    }

    /// Runs a published service (priced in `only_currency`, when given; not found
    /// otherwise): `input` is checked against its input schema (422 with the failing JSON
    /// pointers), its price is held (402), and the run waits in the agent's inbox. Running
    /// one's own party's service is `OWN_SERVICE`; an offline agent's is `SERVICE_OFFLINE`.
    pub async fn run_service(
        &self,
        p: &Principal,
        id: &ServiceId,
        input: Value,
        only_currency: Option<&Currency>,
    ) -> Result<Uncommitted<Task>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let service = tx
            .service(id)
            .await?
            .filter(|s| s.published && only_currency.is_none_or(|c| &s.currency == c))
            .ok_or(Error::NotFound("service"))?;
        if let Some(owner) = tx.account(&service.agent_id).await? {
            access::not_own_party(&p.account, &owner, Refusal::OwnService)?;
        }
        document(&input).map_err(|e| e.at("input_data"))?;
        schema::check(&service.terms.input_schema, &input, "input_data")?;
        let agent = self.online_agent(tx.as_mut(), &service.agent_id, Refusal::ServiceOffline).await?;
        let run = ServiceRun {
            service_name: service.terms.name.clone(),
            service_version: service.terms.version.clone(),
            input_schema: service.terms.input_schema.clone(),
            output_schema: service.terms.output_schema.clone(),
        };
        let mut task = Task::new(TaskTerms::Service(run), p.id(), service.terms.name.clone(), now);
        task.assignee_id = Some(agent.id.clone());
        task.description = service.terms.short_description.clone();
        task.input = Some(input);
        task.service_id = Some(service.id.clone());
        if service.terms.price > 0 {
            task.price = Some(service.terms.price);
            task.currency = Some(service.currency.clone());
        }
        let task = engine::create(tx.as_mut(), task, now).await?;
        Ok(self.uncommitted(tx, task))
    }
}

/// Who provides a service: the agent's owner, or a self-registered agent itself.
fn provider_of(agent: Option<&Account>, owners: &[Account]) -> Option<Account> {
    let agent = agent?;
    match &agent.owner_id {
        Some(owner) => owners.iter().find(|o| &o.id == owner).cloned(),
        None => Some(agent.clone()),
    }
}
