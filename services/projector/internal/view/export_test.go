package view

import "hash/maphash"

// CollideEventIDs makes every event id hash alike in Rebuild until undo is
// called, so each message after the first takes the path of a suspected
// duplicate. Not safe while a rebuild runs.
func CollideEventIDs() (undo func()) {
	eventKey = func(maphash.Seed, string) uint64 { return 0 }
	return func() { eventKey = maphash.String }
}

// AfterFirstRound makes every live Apply of s call f once it holds its
// first round of customer locks.
func AfterFirstRound(s *Store, f func()) { s.afterFirstRound = f }
