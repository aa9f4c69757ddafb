package imapcopy

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
)

func listed(names ...string) []*imap.ListData {
	out := make([]*imap.ListData, len(names))
	for i, n := range names {
		out[i] = &imap.ListData{Mailbox: n, Delim: '/'}
	}
	return out
}

// Namespaces as Dovecot, Cyrus and Exchange-style servers announce them.
var foreignNamespaces = []imap.NamespaceDescriptor{
	{Prefix: "Other Users/", Delim: '/'},
	{Prefix: "Shared/", Delim: '/'},
	{Prefix: "#shared.", Delim: '.'},
}

func TestInNamespace(t *testing.T) {
	for name, want := range map[string]string{
		"Shared/Projects":       "Shared/",
		"shared/projects":       "Shared/",
		"Shared":                "Shared/",
		"Other Users/bob/INBOX": "Other Users/",
		"#shared.team":          "#shared.",
		"#shared":               "#shared.",
		"Shared Stuff":          "",
		"Sharedfolder/x":        "",
		"Archive/Shared/x":      "",
		"INBOX":                 "",
	} {
		d, ok := inNamespace(name, foreignNamespaces)
		assert.Equal(t, want != "", ok, name)
		assert.Equal(t, want, d.Prefix, name)
	}
}

func TestMapFoldersRefusesTheTargetsSharedNamespaces(t *testing.T) {
	src := listed("INBOX", "Projects", "Shared Stuff", "jo.bloggs@trust.nhs.example")
	tgt := listed("INBOX")
	for _, c := range []struct {
		name      string
		folderMap map[string]string
		want      string // in the error; "" if accepted
		notWant   string
	}{
		{"nothing under them", map[string]string{"Projects": "Archive/Projects"}, "", ""},
		{"renamed into the shared namespace", map[string]string{"Projects": "Shared/Projects"},
			`source folder "Projects" would go to target folder "Shared/Projects", in the target's other users' or shared namespace "Shared/"`, ""},
		{"renamed into another user's", map[string]string{"Projects": "Other Users/bob/Projects"},
			`namespace "Other Users/"`, ""},
		{"renamed onto a namespace's root", map[string]string{"Projects": "#shared"}, `namespace "#shared."`, ""},
		{"a name holding an address is withheld", map[string]string{"jo.bloggs@trust.nhs.example": "Shared/jo.bloggs@trust.nhs.example"},
			"(a folder whose name holds an address)", "@"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := &Copier{o: Options{FolderMap: c.folderMap}}
			out, creates, err := cp.mapFolders(src, '/', tgt, '/', foreignNamespaces, "k-alice")
			if c.want == "" {
				require.NoError(t, err)
				assert.Len(t, out, len(src))
				for _, n := range creates {
					_, under := inNamespace(n.name, foreignNamespaces)
					assert.False(t, under, n.name)
				}
				return
			}
			typ, ok := port.IsPermanent(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
			assert.Contains(t, err.Error(), "mailbox k-alice")
			assert.Contains(t, err.Error(), c.want)
			assert.Contains(t, err.Error(), "folder map")
			if c.notWant != "" {
				assert.NotContains(t, err.Error(), c.notWant)
			}
			assert.Nil(t, creates, "nothing is created when a folder is refused")
		})
	}
}

func TestMapFoldersWithoutNamespaces(t *testing.T) {
	// A source delimited with '.', a target with '/': the path is kept, a
	// '/' within a name replaced; INBOX first, then by source name.
	src := []*imap.ListData{
		{Mailbox: "Shared.Projects", Delim: '.'},
		{Mailbox: "INBOX", Delim: '.'},
		{Mailbox: "a/b", Delim: '.'},
	}
	cp := &Copier{}
	out, creates, err := cp.mapFolders(src, '.', listed("INBOX"), '/', nil, "k-alice")
	require.NoError(t, err)
	assert.Equal(t, []folder{{src: "INBOX", tgt: "INBOX"}, {src: "Shared.Projects", tgt: "Shared/Projects"}, {src: "a/b", tgt: "a_b"}}, out)
	assert.Equal(t, []newFolder{{name: "Shared/Projects", withUse: true}, {name: "a_b", withUse: true}}, creates)
}
