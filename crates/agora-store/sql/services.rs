//! Published services and their favourites.

use agora_core::{AccountId, ServiceId, Timestamp, money::Currency, work::ServiceTerms};
use agora_store::{Page, Result, Service, ServiceQuery, ServiceReads, ServiceSort, ServiceWrites};
use async_trait::async_trait;
use tracing::instrument;

use super::{
    DbRow, InTx, Source, Sql,
    rows::{count, err, get, json_col, like_pattern, limit_of, time, to_json},
};
use crate::db;

macro_rules! service_cols {
    () => {
        "s.id, s.agent_id, s.name, s.version, s.short_description, s.description, s.price, s.currency, \
         s.input_schema, s.output_schema, s.published, s.paid_count, s.favorite_count, s.total_revenue, \
         s.created_at, s.updated_at"
    };
}

fn service_from_row(r: &DbRow) -> Result<Service> {
    Ok(Service {
        id: ServiceId::from_trusted(get(r, "id")?),
        agent_id: AccountId::from_trusted(get(r, "agent_id")?),
        terms: ServiceTerms {
            name: get(r, "name")?,
            version: get(r, "version")?,
            short_description: get(r, "short_description")?,
            description: get(r, "description")?,
            price: get(r, "price")?,
            input_schema: json_col(r, "input_schema")?,
            output_schema: json_col(r, "output_schema")?,
        },
        currency: Currency::from_trusted(get(r, "currency")?),
        published: get(r, "published")?,
        paid_count: get(r, "paid_count")?,
        favorite_count: get(r, "favorite_count")?,
        total_revenue: get(r, "total_revenue")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

#[async_trait]
impl<S: Source> ServiceReads for Sql<S> {
    #[instrument(level = "debug", skip_all)]
    async fn service(&mut self, id: &ServiceId) -> Result<Option<Service>> {
        let sql = concat!("SELECT ", service_cols!(), " FROM services s WHERE s.id = $1");
        let row = db::query(sql).bind(id.as_str()).fetch_optional(self.0.exec()).await.map_err(err)?;
        row.as_ref().map(service_from_row).transpose()
    }

    #[instrument(level = "debug", skip_all)]
    async fn services(&mut self, q: &ServiceQuery) -> Result<Page<Service>> {
        let filter = concat!(
            not_banned!(),
            " AND (($1 IS NULL AND s.published) OR s.agent_id = $1) \
             AND ($2 IS NULL OR lower(s.name) LIKE $2 ESCAPE '\\' OR lower(s.short_description) LIKE $2 ESCAPE '\\' \
                  OR lower(s.description) LIKE $2 ESCAPE '\\') \
             AND ($3 IS NULL OR ",
            online_since!("$3"),
            ") AND ($4 IS NULL OR s.currency = $4)"
        );
        let order = match q.sort {
            ServiceSort::Newest => "s.created_at DESC, s.id DESC",
            ServiceSort::PriceAsc => "s.price ASC, s.created_at DESC, s.id DESC",
            ServiceSort::PriceDesc => "s.price DESC, s.created_at DESC, s.id DESC",
            ServiceSort::MostPaid => "s.paid_count DESC, s.created_at DESC, s.id DESC",
        };
        let agent = q.agent.as_ref().map(AccountId::as_str);
        let text = q.text.as_deref().map(like_pattern);
        let online = q.online_since.map(Timestamp::millis);
        let currency = q.currency.as_ref().map(Currency::as_str);
        let sql = format!(
            "SELECT {} FROM services s JOIN accounts a ON a.id = s.agent_id WHERE {filter} \
             ORDER BY {order} LIMIT $5 OFFSET $6",
            service_cols!()
        );
        let rows = db::query(db::AssertSqlSafe(sql))
            .bind(agent)
            .bind(text.as_deref())
            .bind(online)
            .bind(currency)
            .bind(limit_of(q.limit))
            .bind(limit_of(q.offset))
            .fetch_all(self.0.exec())
            .await
            .map_err(err)?;
        let total: i64 = get(
            &db::query(db::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM services s JOIN accounts a ON a.id = s.agent_id WHERE {filter}"
            )))
            .bind(agent)
            .bind(text.as_deref())
            .bind(online)
            .bind(currency)
            .fetch_one(self.0.exec())
            .await
            .map_err(err)?,
            "n",
        )?;
        Ok(Page { items: rows.iter().map(service_from_row).collect::<Result<_>>()?, total: count(total) })
    }

    #[instrument(level = "debug", skip_all)]
    async fn is_favorite(&mut self, service: &ServiceId, account: &AccountId) -> Result<bool> {
        let row =
            db::query("SELECT 1 AS one FROM service_favorites WHERE service_id = $1 AND account_id = $2")
                .bind(service.as_str())
                .bind(account.as_str())
                .fetch_optional(self.0.exec())
                .await
                .map_err(err)?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl ServiceWrites for Sql<InTx> {
    #[instrument(level = "debug", skip_all)]
    async fn insert_service(&mut self, s: &Service) -> Result<()> {
        db::query(
            "INSERT INTO services (id, agent_id, name, version, short_description, description, price, currency, \
             input_schema, output_schema, published, paid_count, favorite_count, total_revenue, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 0, $12, $12)",
        )
        .bind(s.id.as_str())
        .bind(s.agent_id.as_str())
        .bind(&s.terms.name)
        .bind(&s.terms.version)
        .bind(&s.terms.short_description)
        .bind(&s.terms.description)
        .bind(s.terms.price)
        .bind(s.currency.as_str())
        .bind(to_json(&s.terms.input_schema)?)
        .bind(to_json(&s.terms.output_schema)?)
        .bind(s.published)
        .bind(s.created_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn service_for_update(&mut self, id: &ServiceId) -> Result<Option<Service>> {
        self.locked_by_id(service_cols!(), "services s", id.as_str(), service_from_row).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_service(&mut self, s: &Service) -> Result<()> {
        db::query(
            "UPDATE services SET name = $2, version = $3, short_description = $4, description = $5, price = $6, \
             currency = $7, input_schema = $8, output_schema = $9, published = $10, updated_at = $11 WHERE id = $1",
        )
        .bind(s.id.as_str())
        .bind(&s.terms.name)
        .bind(&s.terms.version)
        .bind(&s.terms.short_description)
        .bind(&s.terms.description)
        .bind(s.terms.price)
        .bind(s.currency.as_str())
        .bind(to_json(&s.terms.input_schema)?)
        .bind(to_json(&s.terms.output_schema)?)
        .bind(s.published)
        .bind(s.updated_at.millis())
        .execute(self.conn())
        .await
        .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn service_paid(&mut self, id: &ServiceId, amount: i64) -> Result<()> {
        db::query("UPDATE services SET paid_count = paid_count + 1, total_revenue = total_revenue + $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(amount)
            .execute(self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    async fn set_favorite(
        &mut self,
        service: &ServiceId,
        account: &AccountId,
        on: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let changed = if on {
            db::query(
                "INSERT INTO service_favorites (service_id, account_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (service_id, account_id) DO NOTHING",
            )
            .bind(service.as_str())
            .bind(account.as_str())
            .bind(now.millis())
            .execute(self.conn())
            .await
            .map_err(err)?
        } else {
            db::query("DELETE FROM service_favorites WHERE service_id = $1 AND account_id = $2")
                .bind(service.as_str())
                .bind(account.as_str())
                .execute(self.conn())
                .await
                .map_err(err)?
        }
        .rows_affected()
            == 1;
        if changed {
            db::query("UPDATE services SET favorite_count = favorite_count + $2 WHERE id = $1")
                .bind(service.as_str())
                .bind(if on { 1_i64 } else { -1 })
                .execute(self.conn())
                .await
                .map_err(err)?;
        }
        Ok(changed)
    }
}
