package sim

import "math"

// Size model of a mailbox: total size is lognormal with the given median and
// mean, clamped, and split into messages of about avgMessageBytes.
const (
	mib             = 1 << 20
	medianBytes     = 300 * mib
	meanBytes       = 1024 * mib
	minMailboxBytes = 1 * mib
	maxMailboxBytes = 50 << 30
	avgMessageBytes = 75 << 10
	minMessageBytes = 512
	maxDelta        = 20 // delta messages per mailbox: 0..maxDelta
)

// Salts keep the hash streams for different decisions independent.
const (
	saltSize uint64 = iota + 1
	saltSplit
	saltDelta
	saltUIDValidity
	saltMessage
	saltNotFound
	saltFault
	saltOrg
	saltFirst
	saltLast
	saltPreflight
)

// deltaFolder is the folder new mail arrives in (INBOX).
const deltaFolder = 0

// folderLayout names a mailbox's folders and their rough share of messages.
// Read-only.
var folderLayout = [...]struct {
	name  string
	share float64
}{
	{"INBOX", 0.45},
	{"Sent", 0.25},
	{"Archive", 0.25},
	{"Deleted Items", 0.03},
	{"Drafts", 0.02},
}

// Profile is what a mailbox holds at the source before the delta arrives. It
// is derived from (seed, index) alone and never stored.
type Profile struct {
	Index    int
	Bytes    int64 // nominal size of the bulk content
	Messages int64 // bulk messages, at least 1
	Delta    int   // messages that arrive after the bulk pass
	Folders  []FolderProfile

	seed        int64
	meanMessage int64
}

// FolderProfile is one source folder: UIDs 1..Messages, plus the delta for
// the delta folder once it has arrived.
type FolderProfile struct {
	Name        string
	UIDValidity uint32
	Messages    uint32
}

// profileOf derives the profile of mailbox index in an estate with seed.
func profileOf(seed int64, index int) Profile {
	sigma := math.Sqrt(2 * math.Log(float64(meanBytes)/medianBytes))
	z := normal(hash(uint64(seed), uint64(index), saltSize))
	bytes := int64(math.Exp(math.Log(medianBytes) + sigma*z))
	bytes = min(max(bytes, minMailboxBytes), maxMailboxBytes)
	msgs := max(bytes/avgMessageBytes, 1)

	p := Profile{
		Index:       index,
		Bytes:       bytes,
		Messages:    msgs,
		Delta:       int(hash(uint64(seed), uint64(index), saltDelta) % (maxDelta + 1)),
		Folders:     make([]FolderProfile, len(folderLayout)),
		seed:        seed,
		meanMessage: bytes / msgs,
	}
	// Split the messages by jittered shares; the rounding remainder goes to
	// the first folder.
	var weights [len(folderLayout)]float64
	var total float64
	for i, f := range folderLayout {
		weights[i] = f.share * (0.5 + unit(hash(uint64(seed), uint64(index), saltSplit, uint64(i))))
		total += weights[i]
	}
	rest := msgs
	for i := len(folderLayout) - 1; i >= 0; i-- {
		n := int64(float64(msgs) * weights[i] / total)
		if i == 0 {
			n = rest
		}
		rest -= n
		p.Folders[i] = FolderProfile{
			Name:        folderLayout[i].name,
			UIDValidity: uint32(hash(uint64(seed), uint64(index), saltUIDValidity, uint64(i))) | 1,
			Messages:    uint32(n),
		}
	}
	return p
}

// sourceCount is the number of messages in folder fi at the source, with the
// delta counted once it has arrived. UIDs are 1..sourceCount.
func (p *Profile) sourceCount(fi int, deltaArrived bool) uint32 {
	n := p.Folders[fi].Messages
	if deltaArrived && fi == deltaFolder {
		n += uint32(p.Delta)
	}
	return n
}

// sourceItems is the number of messages in the whole mailbox at the source.
func (p *Profile) sourceItems(deltaArrived bool) int64 {
	n := p.Messages
	if deltaArrived {
		n += int64(p.Delta)
	}
	return n
}

// messageSize is the size of one virtual message: uniform within ±75% of the
// mailbox's mean message size.
func (p *Profile) messageSize(fi int, uid uint32) int64 {
	u := unit(hash(uint64(p.seed), uint64(p.Index), saltMessage, uint64(fi), uint64(uid)))
	return max(int64(float64(p.meanMessage)*(0.25+1.5*u)), minMessageBytes)
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash combines its parts into one well-mixed 64-bit value. Every random
// decision of the simulation is a hash of what it depends on, so the same
// inputs always give the same outcome.
func hash(parts ...uint64) uint64 {
	h := uint64(0x6a09e667f3bcc908)
	for _, p := range parts {
		h = mix(h ^ p)
	}
	return h
}

// hashString is 64-bit FNV-1a, to turn a string into a hash part.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 {
	return float64(h>>11) / (1 << 53)
}

// normal maps a hash to a standard normal variate (Box-Muller).
func normal(h uint64) float64 {
	u1 := 1 - unit(h) // (0, 1]: safe for the logarithm
	u2 := unit(mix(h))
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
