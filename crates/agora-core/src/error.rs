//! What kind of refusal an error is, independent of any transport. Every layer's error
//! names its kind; each frontend maps kinds to its own answers once (the HTTP layer to
//! status codes, a dialect to its document's statuses).

/// The kinds of refusal. Their meaning, not their HTTP status, is what this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule about its shape (field paths in details).
    Invalid,
    /// No credentials, or credentials that name nobody.
    Unauthenticated,
    /// The actor is known but may not do this.
    Forbidden,
    /// No such object, or not one the actor may see (others' objects are not found).
    NotFound,
    /// The request cannot be done in the object's current state, or as asked.
    BadRequest,
    /// Someone else got there first, or the thing exists already.
    Conflict,
    /// Not enough money or quota.
    PaymentRequired,
    /// The request body is larger than allowed.
    TooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// A dependency (an agent, the database) cannot take it now.
    Unavailable,
    /// Something failed that the client cannot fix.
    Internal,
}
