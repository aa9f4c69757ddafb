package imaptest

import (
	"encoding/base64"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// minBulkSize is the smallest message GenerateBulk makes: headers and a
// line of text.
const minBulkSize = 600

// BulkFolders turns folder names into SeedFolders (special use left to the
// server's configuration).
func BulkFolders(names []string) []SeedFolder {
	out := make([]SeedFolder, len(names))
	for i, n := range names {
		out[i] = SeedFolder{Name: n}
	}
	return out
}

// GenerateBulk yields messages for a benchmark: count messages adding up to
// about totalBytes, sizes spread log-normally (most a few kilobytes, a few
// of several megabytes, as in real mailboxes), over folders at random,
// with dates from 2005 to 2024 and mostly-seen flags. Each has a unique
// Message-ID. The same arguments give the same messages, byte for byte;
// they are made as they are consumed, so 200 MB need not sit in memory.
func GenerateBulk(seed int64, count int, totalBytes int64, folders []string) iter.Seq[SeedMessage] {
	return func(yield func(SeedMessage) bool) {
		if count <= 0 || len(folders) == 0 {
			return
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 0x6d61696c77617665))
		sizes := bulkSizes(rng, count, totalBytes)
		// One block of base64 text to cut bodies from: cheap to make and
		// incompressible, like real attachments.
		block := make([]byte, 3<<20)
		cha := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
		_, _ = cha.Read(block)
		text := base64.StdEncoding.EncodeToString(block)

		start := time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC)
		span := int64(20 * 365 * 24 * time.Hour / time.Second)
		for i, size := range sizes {
			date := start.Add(time.Duration(rng.Int64N(span)) * time.Second)
			folder := folders[rng.IntN(len(folders))]
			m := SeedMessage{
				Folder:       folder,
				Flags:        bulkFlags(rng),
				InternalDate: date,
				Raw:          bulkMessage(seed, i, size, date, text, rng.IntN(len(text))),
			}
			if !yield(m) {
				return
			}
		}
	}
}

// bulkSizes draws log-normal sizes (median ~12 kB) and scales them so that
// they add up to totalBytes, none below minBulkSize.
func bulkSizes(rng *rand.Rand, count int, totalBytes int64) []int {
	w := make([]float64, count)
	var sum float64
	for i := range w {
		w[i] = math.Exp(9.4 + 1.3*rng.NormFloat64())
		sum += w[i]
	}
	spare := float64(totalBytes - int64(count)*minBulkSize)
	sizes := make([]int, count)
	for i := range w {
		sizes[i] = minBulkSize + int(math.Max(0, spare)*w[i]/sum)
	}
	return sizes
}

func bulkFlags(rng *rand.Rand) []imap.Flag {
	var f []imap.Flag
	if rng.IntN(10) < 7 {
		f = append(f, imap.FlagSeen)
	}
	if rng.IntN(10) == 0 {
		f = append(f, imap.FlagFlagged)
	}
	if rng.IntN(5) == 0 {
		f = append(f, imap.FlagAnswered)
	}
	if rng.IntN(20) == 0 {
		f = append(f, KeywordLabel1)
	}
	return f
}

// bulkMessage makes message i of about size bytes: a text part and, past
// a few kilobytes, a base64 attachment cut from text at offset.
func bulkMessage(seed int64, i, size int, date time.Time, text string, offset int) []byte {
	const boundary = "bulk-boundary-0c1d"
	var b strings.Builder
	b.Grow(size + 512)
	writeHeader(&b, header{
		from:    fmt.Sprintf("Sender %d <sender%d@bulk.example>", i%97, i%97),
		to:      "alice@example.org",
		subject: fmt.Sprintf("Bulk message %d of seed %d", i, seed),
		id:      fmt.Sprintf("bulk-%d-%d@mailwave.test", seed, i),
		date:    date,
	})
	crlf(&b, "MIME-Version: 1.0\n")
	if size < 4096 {
		crlf(&b, "Content-Type: text/plain; charset=us-ascii\n\n")
		fillLines(&b, size-b.Len(), text, offset)
		return []byte(b.String())
	}
	crlf(&b, "Content-Type: multipart/mixed; boundary=\""+boundary+"\"\n\n")
	crlf(&b, "--"+boundary+"\nContent-Type: text/plain; charset=us-ascii\n\n")
	crlf(&b, fmt.Sprintf("Message %d carries an attachment.\n", i))
	crlf(&b, "--"+boundary+"\nContent-Type: application/octet-stream\n")
	crlf(&b, "Content-Transfer-Encoding: base64\n\n")
	const trailer = len("--" + boundary + "--\r\n")
	fillLines(&b, size-b.Len()-trailer, text, offset)
	crlf(&b, "--"+boundary+"--\n")
	return []byte(b.String())
}

// fillLines writes about n bytes of 76-character lines (CRLF-terminated)
// from text, wrapping round, at least one line.
func fillLines(b *strings.Builder, n int, text string, offset int) {
	const line = 76
	for written := 0; written == 0 || written+line+2 <= n; written += line + 2 {
		if offset+line > len(text) {
			offset = 0
		}
		b.WriteString(text[offset : offset+line])
		b.WriteString("\r\n")
		offset += line
	}
}
