package core

// State is the lifecycle of a Client. Every change goes through
// Client.transition, which refuses the moves this table does not allow.
type State int32

// The states, in their ABI order (shared with the C header and Python).
const (
	StateConnecting   State = 0 // dialling or in the opening handshake
	StateOpen         State = 1 // messages flow both ways
	StateReconnecting State = 2 // the connection was lost; waiting to dial again
	StateClosing      State = 3 // close() was called, the peer started the close handshake, or the end is decided
	StateClosed       State = 4 // terminal: no goroutine of this client is left
)

var stateNames = [...]string{"connecting", "open", "reconnecting", "closing", "closed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// allowed lists, for each state, the states it may move to.
var allowed = [...][]State{
	StateConnecting:   {StateOpen, StateReconnecting, StateClosing, StateClosed},
	StateOpen:         {StateReconnecting, StateClosing, StateClosed},
	StateReconnecting: {StateConnecting, StateClosing, StateClosed},
	StateClosing:      {StateReconnecting, StateClosed}, // the peer closed, we reconnect
	StateClosed:       nil,
}

func (s State) canMoveTo(to State) bool {
	for _, t := range allowed[s] {
		if t == to {
			return true
		}
	}
	return false
}
