// Package alerts is Switchyard's alerting service: it turns failures that a
// person must act on into Slack messages — every dead letter (with its
// class, the customer's masked email, the reason and the exact replay
// command), failures to open a ticket in a critical flow, and sustained
// storms of CRM retries.
//
// Alerts are deduplicated (one per dead letter or failure, through the
// done-effects ledger, across restarts and redeliveries) and rate limited:
// alerts of one kind (consumer and class) within ALERTS_WINDOW are folded
// into the next one as a count, so an outage produces a few messages, not
// thousands.
//
// Everything an alert shows from a dead letter, an outcome or the status
// API (names, emails, reasons quoting vendor answers, even consumer and
// subject names) is data: it goes through slack.Code, so it arrives as
// inert text, never as a mention, markup or link. The only links are to
// the console (SWITCHYARD_CONSOLE_URL, from configuration).
package alerts
