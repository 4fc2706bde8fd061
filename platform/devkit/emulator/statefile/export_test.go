package statefile

// CompactIdle is what Run does when the account has been quiet for an
// interval, for the tests.
var CompactIdle = (*Keeper).compactIdle
