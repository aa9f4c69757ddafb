package imapcopy

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"mailwave/contract"
	"mailwave/mail/port"
)

// specialUses are the special-use attributes mapped by attribute, not name:
// "Sent Items" on the source lands in the target's own \Sent folder.
var specialUses = []imap.MailboxAttr{
	imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrTrash, imap.MailboxAttrJunk, imap.MailboxAttrArchive,
}

// folder is one source folder and where it goes.
type folder struct {
	src     string
	tgt     string
	special imap.MailboxAttr
}

// virtual are attributes of folders that only show messages kept
// elsewhere (Gmail's All Mail, Starred, Important): copying one would copy
// its messages twice.
var virtual = []imap.MailboxAttr{imap.MailboxAttrAll, imap.MailboxAttrFlagged, imap.MailboxAttrImportant}

// list returns a server's selectable folders of the user's own (not other
// users' or shared namespaces, not virtual folders), its hierarchy
// delimiter, and its other users' and shared namespaces.
func list(cn *conn) ([]*imap.ListData, rune, []imap.NamespaceDescriptor, error) {
	var foreign []imap.NamespaceDescriptor
	if cn.c.Caps().Has(imap.CapNamespace) {
		ns, err := cn.c.Namespace().Wait()
		if err != nil {
			return nil, 0, nil, err
		}
		for _, d := range append(ns.Other, ns.Shared...) {
			if d.Prefix != "" {
				foreign = append(foreign, d)
			}
		}
	}
	opts := &imap.ListOptions{}
	if cn.c.Caps().Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	all, err := cn.c.List("", "*", opts).Collect()
	if err != nil {
		return nil, 0, nil, err
	}
	delim := rune(0)
	out := all[:0]
	for _, l := range all {
		if delim == 0 && l.Delim != 0 {
			delim = l.Delim
		}
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) ||
			slices.ContainsFunc(l.Attrs, func(a imap.MailboxAttr) bool { return slices.Contains(virtual, a) }) ||
			slices.ContainsFunc(foreign, func(d imap.NamespaceDescriptor) bool { return strings.HasPrefix(l.Mailbox, d.Prefix) }) {
			continue
		}
		out = append(out, l)
	}
	if delim == 0 {
		delim = '/'
	}
	return out, delim, foreign, nil
}

// inNamespace returns the namespace of those given that name falls under:
// below its prefix, or its root (the prefix without its delimiter, e.g.
// "Shared" for "Shared/"). Case is ignored, erring on the side of caution:
// some servers ignore it too.
func inNamespace(name string, namespaces []imap.NamespaceDescriptor) (imap.NamespaceDescriptor, bool) {
	for _, d := range namespaces {
		root := d.Prefix
		if d.Delim != 0 {
			root = strings.TrimSuffix(root, string(d.Delim))
		}
		if strings.HasPrefix(strings.ToLower(name), strings.ToLower(d.Prefix)) ||
			root != "" && strings.EqualFold(name, root) {
			return d, true
		}
	}
	return imap.NamespaceDescriptor{}, false
}

func specialOf(l *imap.ListData) imap.MailboxAttr {
	for _, a := range l.Attrs {
		for _, s := range specialUses {
			if strings.EqualFold(string(a), string(s)) {
				return s
			}
		}
	}
	return ""
}

// planFolders maps every source folder to a target folder (mapFolders)
// and creates those the target lacks. Nothing is created unless every
// folder has its place.
func (c *Copier) planFolders(src, tgt *conn, key string) ([]folder, error) {
	srcList, srcDelim, _, err := list(src)
	if err != nil {
		return nil, err
	}
	tgtList, tgtDelim, tgtForeign, err := list(tgt)
	if err != nil {
		return nil, err
	}
	out, creates, err := c.mapFolders(srcList, srcDelim, tgtList, tgtDelim, tgtForeign, key)
	if err != nil {
		return nil, err
	}
	for _, n := range creates {
		if err := create(tgt, n.name, n.special, n.withUse); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newFolder is a target folder to create, with its special use where the
// target has no folder of that use yet.
type newFolder struct {
	name    string
	special imap.MailboxAttr
	withUse bool
}

// mapFolders maps every source folder to a target folder: the rename map
// first, then INBOX, then a special-use folder to the target's folder of
// that use, else the same path with the target's delimiter. It refuses, for
// good, two source folders going to one target folder, and a target folder
// under the target's other users' or shared namespaces (foreign): that
// would write the mailbox into someone else's. Folders come back INBOX
// first, then by name, with the target folders to create in order.
func (c *Copier) mapFolders(srcList []*imap.ListData, srcDelim rune, tgtList []*imap.ListData, tgtDelim rune,
	foreign []imap.NamespaceDescriptor, key string) ([]folder, []newFolder, error) {
	exists := make(map[string]bool, len(tgtList))
	bySpecial := make(map[imap.MailboxAttr]string)
	for _, l := range tgtList {
		exists[l.Mailbox] = true
		if s := specialOf(l); s != "" {
			if _, ok := bySpecial[s]; !ok {
				bySpecial[s] = l.Mailbox
			}
		}
	}
	var out []folder
	var creates []newFolder
	from := map[string]string{} // target folder -> the source folder going there
	for _, l := range srcList {
		f := folder{src: l.Mailbox, special: specialOf(l)}
		switch to, renamed := c.o.FolderMap[l.Mailbox]; {
		case renamed:
			f.tgt = to
		case strings.EqualFold(l.Mailbox, "INBOX"):
			f.src, f.tgt = l.Mailbox, "INBOX"
		case f.special != "" && bySpecial[f.special] != "":
			f.tgt = bySpecial[f.special]
		default:
			parts := strings.Split(l.Mailbox, string(srcDelim))
			for i, p := range parts {
				parts[i] = strings.ReplaceAll(p, string(tgtDelim), "_")
			}
			f.tgt = strings.Join(parts, string(tgtDelim))
		}
		if ns, ok := inNamespace(f.tgt, foreign); ok {
			return nil, nil, port.Permanent(contract.ErrTypeInvalidMailbox,
				"mailbox %s: source folder %s would go to target folder %s, in the target's other users' or shared namespace %s; "+
					"map it elsewhere in the folder map", key, label(f.src), label(f.tgt), label(ns.Prefix))
		}
		if other, taken := from[f.tgt]; taken {
			// Two folders' messages in one would confuse the duplicate
			// check and the verification of both: the rename map must
			// tell them apart.
			return nil, nil, port.Permanent(contract.ErrTypeInvalidMailbox,
				"mailbox %s: source folders %s and %s would both go to target folder %s; add one to the folder map",
				key, label(other), label(f.src), label(f.tgt))
		}
		from[f.tgt] = f.src
		if !exists[f.tgt] {
			creates = append(creates, newFolder{name: f.tgt, special: f.special, withUse: bySpecial[f.special] == ""})
			exists[f.tgt] = true
			if f.special != "" && bySpecial[f.special] == "" {
				bySpecial[f.special] = f.tgt
			}
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b folder) int {
		switch ai, bi := a.tgt == "INBOX", b.tgt == "INBOX"; {
		case ai && !bi:
			return -1
		case bi && !ai:
			return 1
		}
		return strings.Compare(a.src, b.src)
	})
	return out, creates, nil
}

// create makes a target folder, with its special use where the server can
// take it (CREATE-SPECIAL-USE), and plainly where it refuses the attribute.
func create(tgt *conn, name string, special imap.MailboxAttr, withUse bool) error {
	if special != "" && withUse && tgt.c.Caps().Has(imap.CapCreateSpecialUse) {
		err := tgt.c.Create(name, &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{special}}).Wait()
		if err == nil || alreadyExists(err) {
			return nil
		}
	}
	if err := tgt.c.Create(name, nil).Wait(); err != nil && !alreadyExists(err) {
		return err
	}
	return nil
}

// shown is a folder's name as a bad-item list shows it: as it is, unless
// it holds an address.
func shown(name string) string {
	if strings.Contains(name, "@") {
		return "(a folder whose name holds an address)"
	}
	return name
}

// label is a folder's name as errors show it: shown, and quoted.
func label(name string) string {
	if s := shown(name); s != name {
		return s
	}
	return strconv.Quote(name)
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists
}
