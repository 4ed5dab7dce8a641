"""The Postgres NOTIFY channel every gateway process listens on (app.streams.listener).

One channel for everything, told apart by payload: `job:<id>` and `account:<id>` (new job rows,
app.jobs.repository), `keys` (an API key changed, app.auth.repository), `webhooks` (deliveries
are due, app.webhooks.repository), `accounts` (an account's limits changed,
app.accounts.repository). A notification is only a doorbell: listeners read the rows.
"""

NOTIFY_CHANNEL = "cortex_jobs"

# An account's limits changed (app.accounts.repository): every process forgets the limits it
# remembered (app.accounts.service).
ACCOUNTS_CHANGED = "accounts"
