-- Money columns hold integers only. SQLite would store a float in an INTEGER column (an
-- integer arithmetic overflow, e.g. `balance + 1` at 2^63 - 1, quietly becomes a REAL), and a
-- float balance breaks every later sum. A CHECK cannot be added to an existing SQLite table
-- without rebuilding it (and the tables that reference it), so these triggers enforce the
-- same rule on every insert and update: the statement fails instead of storing a float.
-- The ledger's own statements refuse an out-of-range balance before any arithmetic happens
-- (see `post_ledger`); these are the backstop. PostgreSQL's BIGINT needs none.

CREATE TRIGGER ledger_accounts_balance_integer_insert BEFORE INSERT ON ledger_accounts
WHEN typeof(NEW.balance) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'ledger_accounts.balance must be an integer number of minor units');
END;

CREATE TRIGGER ledger_accounts_balance_integer_update BEFORE UPDATE OF balance ON ledger_accounts
WHEN typeof(NEW.balance) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'ledger_accounts.balance must be an integer number of minor units');
END;

CREATE TRIGGER ledger_lines_amount_integer_insert BEFORE INSERT ON ledger_lines
WHEN typeof(NEW.amount) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'ledger_lines.amount must be an integer number of minor units');
END;

CREATE TRIGGER ledger_lines_amount_integer_update BEFORE UPDATE OF amount ON ledger_lines
WHEN typeof(NEW.amount) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'ledger_lines.amount must be an integer number of minor units');
END;

CREATE TRIGGER holds_amount_integer_insert BEFORE INSERT ON holds
WHEN typeof(NEW.amount) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'holds.amount must be an integer number of minor units');
END;

CREATE TRIGGER holds_amount_integer_update BEFORE UPDATE OF amount ON holds
WHEN typeof(NEW.amount) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'holds.amount must be an integer number of minor units');
END;

CREATE TRIGGER holds_remaining_integer_insert BEFORE INSERT ON holds
WHEN typeof(NEW.remaining) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'holds.remaining must be an integer number of minor units');
END;

CREATE TRIGGER holds_remaining_integer_update BEFORE UPDATE OF remaining ON holds
WHEN typeof(NEW.remaining) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'holds.remaining must be an integer number of minor units');
END;

CREATE TRIGGER tasks_price_integer_insert BEFORE INSERT ON tasks
WHEN NEW.price IS NOT NULL AND typeof(NEW.price) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'tasks.price must be an integer number of minor units');
END;

CREATE TRIGGER tasks_price_integer_update BEFORE UPDATE OF price ON tasks
WHEN NEW.price IS NOT NULL AND typeof(NEW.price) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'tasks.price must be an integer number of minor units');
END;

CREATE TRIGGER services_price_integer_insert BEFORE INSERT ON services
WHEN NEW.price IS NOT NULL AND typeof(NEW.price) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'services.price must be an integer number of minor units');
END;

CREATE TRIGGER services_price_integer_update BEFORE UPDATE OF price ON services
WHEN NEW.price IS NOT NULL AND typeof(NEW.price) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'services.price must be an integer number of minor units');
END;
