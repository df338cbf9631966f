//! Paid 1:1 chats with an agent (AgentJob): each user message is one `chat` task carrying
//! the whole conversation; its price is held from the requester, paid to the agent when it
//! replies, refunded when the turn fails or its lease runs out.

use agora_core::{
    AccountId, ChatId,
    account::{Account, AccountKind},
    money::Currency,
    work::{TaskTerms, chat_price, is_first_turn, message_text},
};
use agora_store::{Chat, ChatMessage, Task, Tx};
use serde_json::json;

use crate::{
    App, Principal, Uncommitted, access, engine,
    error::{Error, Refusal, Result},
};

/// A queued chat turn: the task, its chat, and what it costs (`None` when free).
#[derive(Debug, Clone)]
pub struct ChatTurn {
    pub task: Task,
    pub chat: Chat,
    pub price: Option<(i64, Currency)>,
}

/// Whether a chat is in the store yet.
#[derive(Clone, Copy)]
enum Stored {
    No,
    Yes,
}

impl App {
    /// The agent to give direct work: an existing, unbanned agent account that is online
    /// (`offline` otherwise: `AGENT_OFFLINE` or `SERVICE_OFFLINE`).
    pub(crate) async fn online_agent(
        &self,
        tx: &mut dyn Tx,
        id: &AccountId,
        offline: Refusal,
    ) -> Result<Account> {
        let agent = tx
            .account(id)
            .await?
            .filter(|a| a.kind == AccountKind::Agent && !a.is_banned())
            .ok_or(Error::NotFound("agent"))?;
        if !agent.is_online(self.now()) {
            return Err(offline.into());
        }
        Ok(agent)
    }

    /// Starts a chat with an agent: the first message becomes a task in its inbox.
    /// Rate-limited per IP (`chat`).
    pub async fn start_chat(
        &self,
        p: &Principal,
        agent_id: &AccountId,
        message: &str,
    ) -> Result<Uncommitted<ChatTurn>> {
        let message = self.turn_message(p, message)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let agent = self.online_agent(tx.as_mut(), agent_id, Refusal::AgentOffline).await?;
        access::not_own_party(&p.account, &agent, Refusal::Forbidden("you cannot chat with your own agent"))?;
        let mut chat = Chat {
            id: ChatId::generate(),
            requester_id: p.id().clone(),
            agent_id: agent.id.clone(),
            messages: vec![ChatMessage { role: "user".into(), content: message }],
            open_task_id: None,
            turns: 0,
            created_at: now,
            updated_at: now,
        };
        let turn = self.queue_turn(tx.as_mut(), &mut chat, &agent, Stored::No).await?;
        Ok(self.uncommitted(tx, turn))
    }

    /// Sends the next message of a chat (its requester), once the previous turn has
    /// finished (`CHAT_TURN_PENDING` before).
    pub async fn next_chat_message(
        &self,
        p: &Principal,
        chat_id: &ChatId,
        message: &str,
    ) -> Result<Uncommitted<ChatTurn>> {
        let message = self.turn_message(p, message)?;
        let mut tx = self.begin().await?;
        let mut chat = tx
            .chat_for_update(chat_id)
            .await?
            .filter(|c| &c.requester_id == p.id())
            .ok_or(Error::NotFound("chat"))?;
        let agent = self.online_agent(tx.as_mut(), &chat.agent_id, Refusal::AgentOffline).await?;
        if let Some(open) = &chat.open_task_id {
            return Err(Refusal::ChatTurnPending { task_id: open.to_string() }.into());
        }
        chat.messages.push(ChatMessage { role: "user".into(), content: message });
        let turn = self.queue_turn(tx.as_mut(), &mut chat, &agent, Stored::Yes).await?;
        Ok(self.uncommitted(tx, turn))
    }

    /// The message of a chat turn, after the per-IP chat limit.
    fn turn_message(&self, p: &Principal, message: &str) -> Result<String> {
        self.limits().check("chat", &crate::limits::ip_key(p.ip))?;
        Ok(message_text(message).map_err(|e| e.at("message"))?)
    }

    /// Queues one turn of `chat` (already holding the new user message) for its agent, and
    /// writes the chat: inserted if it is new (one statement, not an insert and an update).
    async fn queue_turn(
        &self,
        tx: &mut dyn Tx,
        chat: &mut Chat,
        agent: &Account,
        stored: Stored,
    ) -> Result<ChatTurn> {
        let now = self.now();
        let first = is_first_turn(chat.messages.iter().map(|m| m.role.as_str()));
        let mut task =
            Task::new(TaskTerms::Chat, &chat.requester_id, format!("Chat with {}", agent.name), now);
        task.assignee_id = Some(agent.id.clone());
        task.description = chat.messages.last().map(|m| m.content.clone()).unwrap_or_default();
        task.chat_id = Some(chat.id.clone());
        task.input = Some(json!({ "chat_id": chat.id, "messages": chat.messages, "is_first_chat": first }));
        let mut price = None;
        if let Some((currency, amount)) = chat_price(&agent.profile.pricing, first) {
            let currency = self.settings().currencies.parse(&currency).map_err(|_| {
                Error::invalid("agent.pricing.currency", "the agent prices in an unknown currency")
            })?;
            price = Some((amount, currency.clone()));
            task.price = Some(amount);
            task.currency = Some(currency);
        }
        let task = engine::create(tx, task, now).await?;
        chat.turns += 1;
        chat.open_task_id = Some(task.id.clone());
        chat.updated_at = now;
        match stored {
            Stored::No => tx.insert_chat(chat).await?,
            Stored::Yes => tx.update_chat(chat).await?,
        }
        Ok(ChatTurn { task, chat: chat.clone(), price })
    }
}
