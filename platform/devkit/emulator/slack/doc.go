// Package slack is a local emulator of one Slack incoming webhook, the path
// the hub's alerts take. It is an http.Handler: tests mount it on httptest
// and point the alerter at httptest's URL plus Path, exactly as they would
// at https://hooks.slack.com.
//
// What it emulates, as Slack documents or is observed to do:
//
//   - POST <Path> with a JSON body {"text":…, "blocks":[…],
//     "attachments":[…]} (or a form body whose payload field holds that
//     JSON) answers 200 with the plain-text body "ok", and the message is
//     recorded (Messages) before the answer goes out.
//   - Errors are plain-text codes: 400 invalid_payload (not a JSON object,
//     text not a string, not a POST), 400 no_text (no text, no blocks and no
//     attachments), 400 invalid_blocks (blocks not an array of objects with
//     a "type"), 404 no_service (any other path: an unknown or revoked
//     webhook), 410 channel_is_archived (Options.ChannelArchived,
//     SetArchived).
//   - Rate limit: about one message per second (Options.RateLimit, Burst;
//     a token bucket on the Options.Now clock). Over it: 429 rate_limited
//     with Retry-After in whole seconds (at least 1). Rejected posts are
//     not recorded.
//
// Fault injection: FailNext queues statuses with Slack's bodies
// (403 invalid_token, 500 rollup_error, 429 with Retry-After, …);
// SetLatency delays answers.
//
// What it knowingly does not emulate: message formatting and delivery
// (mrkdwn, mentions, unfurling, block kit limits beyond "an array of typed
// objects"), the legacy channel/username/icon overrides (accepted, not
// acted on: they stay in Raw), response_url and Web API methods, several
// webhooks at once (run one Server per webhook), and the exact 429 body and
// Content-Type, which Slack does not document ("rate_limited" and
// text/plain here).
package slack
