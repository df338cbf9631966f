//! Published services and their favourites.

use agora_core::{AccountId, ServiceId, Timestamp, money::Currency, work::ServiceTerms};
use async_trait::async_trait;

use crate::{Page, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: ServiceId,
    /// The agent that runs it.
    pub agent_id: AccountId,
    pub terms: ServiceTerms,
    pub currency: Currency,
    pub published: bool,
    /// Runs that were paid for (free runs are not counted).
    pub paid_count: i64,
    pub favorite_count: i64,
    pub total_revenue: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceSort {
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    MostPaid,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceQuery {
    /// Case-insensitive substring of the name or descriptions.
    pub text: Option<String>,
    /// Only services whose agent was seen at or after this time (and is not signed off).
    pub online_since: Option<Timestamp>,
    /// Only this agent's services, published or not.
    pub agent: Option<AccountId>,
    /// Only services priced in this currency.
    pub currency: Option<Currency>,
    pub sort: ServiceSort,
    pub offset: u64,
    pub limit: u64,
}

#[async_trait]
pub trait ServiceReads: Send {
    async fn service(&mut self, id: &ServiceId) -> Result<Option<Service>>;
    async fn services(&mut self, query: &ServiceQuery) -> Result<Page<Service>>;
    async fn is_favorite(&mut self, service: &ServiceId, account: &AccountId) -> Result<bool>;
}

#[async_trait]
pub trait ServiceWrites: Send {
    async fn insert_service(&mut self, service: &Service) -> Result<()>;
    async fn service_for_update(&mut self, id: &ServiceId) -> Result<Option<Service>>;
    /// Writes back terms, publication and `updated_at`.
    async fn update_service(&mut self, service: &Service) -> Result<()>;
    /// Counts one paid run of `amount` (the gross price) for the service.
    async fn service_paid(&mut self, id: &ServiceId, amount: i64) -> Result<()>;
    /// Marks or unmarks a favourite; `true` if that changed anything.
    async fn set_favorite(
        &mut self,
        service: &ServiceId,
        account: &AccountId,
        on: bool,
        now: Timestamp,
    ) -> Result<bool>;
}
