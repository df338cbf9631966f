//! Jobs: the search's term index and privacy, and the skill index matching reads.

use std::sync::Arc;

use agora_core::{
    AccountId, Timestamp,
    account::{AccountKind, Profile},
    job::{JobInput, JobSpec},
    money::Currency,
    task::TaskStatus,
    work::{JobRole, TaskTerms},
};

use super::{insert, new_account, now};
use crate::{Invitation, Job, JobQuery, MatchQuery, Store, Task};

async fn post(store: &dyn Store, requester: &AccountId, title: &str, tags: &[&str], public: bool) -> Job {
    let input = JobInput {
        title: Some(title.to_owned()),
        tags: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
        budget_max: Some(100),
        privacy: Some(if public { "public" } else { "invite_only" }.to_owned()),
        ..Default::default()
    };
    let spec = JobSpec::parse(input, now(), agora_core::money::MaxAmount::default()).expect("a valid job");
    let task = Task::new(TaskTerms::Job(JobRole::Posting), requester, spec.title.clone(), now());
    let job = Job {
        id: task.id.clone(),
        requester_id: requester.clone(),
        currency: Currency::from_trusted("PTS".into()),
        status: TaskStatus::Open,
        bid_count: 0,
        hired_count: 0,
        created_at: now(),
        updated_at: now(),
        spec,
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_task(&task).await.expect("task");
    tx.insert_job(&job, &job.spec.search_terms()).await.expect("job");
    tx.commit().await.expect("commit");
    job
}

async fn titles(store: &dyn Store, q: JobQuery) -> Vec<String> {
    let page = store.read().jobs(&JobQuery { limit: 50, ..q }).await.expect("search");
    let mut t: Vec<String> = page.items.into_iter().map(|j| j.spec.title).collect();
    t.sort();
    t
}

/// A search finds jobs by every word of the query (Chinese by character pairs) and by tag
/// through the term index; an edit replaces a job's terms; an invite-only job shows to its
/// requester and its invitees only.
pub async fn job_search_reads_terms_and_privacy(store: Arc<dyn Store>) {
    let poster = new_account(AccountKind::Human, "Poster", None);
    let guest = new_account(AccountKind::Agent, "Guest", None);
    let stranger = new_account(AccountKind::Human, "Stranger", None);
    for a in [&poster, &guest, &stranger] {
        insert(store.as_ref(), a).await;
    }
    let s = store.as_ref();
    post(s, &poster.id, "需要数据分析报告", &["data"], true).await;
    let mut rust = post(s, &poster.id, "Rust backend", &["rust"], true).await;
    let secret = post(s, &poster.id, "Secret rust", &["rust"], false).await;
    let q = |viewer: &AccountId, text: &str, tag: Option<&str>| JobQuery {
        viewer: Some(viewer.clone()),
        terms: agora_core::job::search_terms(text),
        tag: tag.map(str::to_owned),
        ..Default::default()
    };
    assert_eq!(titles(s, q(&stranger.id, "数据分析", None)).await, ["需要数据分析报告"]);
    assert_eq!(titles(s, q(&stranger.id, "RUST", None)).await, ["Rust backend"]);
    assert_eq!(titles(s, q(&poster.id, "rust", None)).await, ["Rust backend", "Secret rust"]);
    assert_eq!(titles(s, q(&guest.id, "", Some("rust"))).await, ["Rust backend"]);

    let mut tx = store.begin().await.expect("begin");
    let invitation = Invitation {
        id: agora_core::InvitationId::generate(),
        job_id: secret.id.clone(),
        requester_id: poster.id.clone(),
        provider_id: guest.id.clone(),
        created_at: now(),
    };
    assert!(tx.insert_invitation(&invitation).await.expect("invite"));
    assert!(!tx.insert_invitation(&invitation).await.expect("again"), "one invitation per provider");
    rust.spec.title = "Go backend".into();
    rust.spec.tags = vec!["go".into()];
    tx.update_job(&rust, Some(&rust.spec.search_terms())).await.expect("edit");
    tx.commit().await.expect("commit");
    assert_eq!(
        titles(s, q(&guest.id, "", Some("rust"))).await,
        ["Secret rust"],
        "invited, and the edit's old tag is gone"
    );
    assert_eq!(titles(s, q(&stranger.id, "go backend", Some("go"))).await, ["Go backend"]);
    assert!(titles(s, q(&stranger.id, "rust", None)).await.is_empty());
}

/// Matching reads the skill index, which follows every write of an account's skills;
/// banned accounts, the requester and other kinds are left out, and at most `cap`
/// candidates are read.
pub async fn skill_matches_follow_profile_writes(store: Arc<dyn Store>) {
    let requester = new_account(AccountKind::Human, "Requester", None);
    insert(store.as_ref(), &requester).await;
    let mut ids = Vec::new();
    for (name, skills) in [("A", vec!["rust", "go"]), ("B", vec!["翻译"]), ("C", vec!["rust"])] {
        let mut a = new_account(AccountKind::Agent, name, None);
        a.profile = Profile { skills: skills.into_iter().map(str::to_owned).collect(), ..Profile::default() };
        insert(store.as_ref(), &a).await;
        ids.push(a.id);
    }
    let matches = |skills: &[&str], kind: Option<AccountKind>, cap: u64| {
        let store = store.clone();
        let q = MatchQuery {
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            kind,
            exclude: requester.id.clone(),
            cap,
        };
        async move {
            let found = store.read().skill_matches(&q).await.expect("match");
            let mut names = found.into_iter().map(|a| a.name).collect::<Vec<_>>();
            names.sort();
            names
        }
    };
    assert_eq!(matches(&["rust"], None, 10).await, ["A", "C"]);
    assert_eq!(matches(&["rust", "go"], None, 10).await, ["A", "C"], "each account once");
    assert_eq!(matches(&["rust"], None, 1).await.len(), 1, "at most cap candidates");
    assert_eq!(matches(&["翻译"], None, 10).await, ["B"]);
    assert!(matches(&["rust"], Some(AccountKind::Human), 10).await.is_empty());
    // A's skills change: the index follows in the same transaction.
    let mut tx = store.begin().await.expect("begin");
    let profile = Profile { skills: vec!["翻译".into()], ..Profile::default() };
    tx.update_profile(&ids[0], "A", &profile, now()).await.expect("profile");
    tx.commit().await.expect("commit");
    assert_eq!(matches(&["rust"], None, 10).await, ["C"]);
    assert_eq!(matches(&["翻译"], None, 10).await, ["A", "B"]);
    // Banned accounts are never matched.
    let mut tx = store.begin().await.expect("begin");
    tx.set_banned(&ids[1], Some(Timestamp::now()), now()).await.expect("ban");
    tx.commit().await.expect("commit");
    assert_eq!(matches(&["翻译"], None, 10).await, ["A"]);
}
