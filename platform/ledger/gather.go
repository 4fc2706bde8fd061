package ledger

import "sync"

// A gatherer gathers concurrent requests into groups sent one at a time,
// without waiting for a group to fill: a request joins the forming group,
// the first of its members to take the token sends it, and the requests
// that arrive meanwhile form the next group. Alone, a request is sent at
// once; under load a group holds what arrived during one round trip.
type gatherer[M any, G gathered[M]] struct {
	mu      sync.Mutex
	forming G
	formed  bool          // forming holds a group
	sending chan struct{} // one token, held while a group is being sent
	max     int           // members a group holds at most
	newG    func() G
}

// gathered is a group type built on a gathering.
type gathered[M any] interface{ base() *gathering[M] }

// gathering is what every group has: its members, whether its sender has
// taken it, and a channel closed once it has been sent and answered.
type gathering[M any] struct {
	members  []M
	sent     bool // under gatherer.mu
	answered chan struct{}
}

func newGatherer[M any, G gathered[M]](max int, newG func() G) *gatherer[M, G] {
	return &gatherer[M, G]{sending: make(chan struct{}, 1), max: max, newG: newG}
}

// join adds m to the forming group and returns the group and m's place in
// it.
func (gr *gatherer[M, G]) join(m M) (G, int) {
	gr.mu.Lock()
	defer gr.mu.Unlock()
	if !gr.formed || len(gr.forming.base().members) == gr.max {
		gr.forming, gr.formed = gr.newG(), true
		gr.forming.base().answered = make(chan struct{})
	}
	g := gr.forming.base()
	g.members = append(g.members, m)
	return gr.forming, len(g.members) - 1
}

// await returns once g has been answered, sending it with send (which
// must close g's answered channel, also when it panics) if this member
// takes the token first. It does not return before: a group's request is
// made for all of its members, who must see its answer.
func (gr *gatherer[M, G]) await(g G, send func(G)) {
	base := g.base()
	for {
		select {
		case <-base.answered:
			return
		case gr.sending <- struct{}{}:
		}
		gr.mu.Lock()
		mine := !base.sent
		if mine {
			base.sent = true
			if gr.formed && gr.forming.base() == base {
				var none G
				gr.forming, gr.formed = none, false
			}
		}
		gr.mu.Unlock()
		if mine {
			func() {
				defer func() { <-gr.sending }() // the token goes back, also on a panic
				send(g)
			}()
			continue
		}
		<-gr.sending
	}
}
