package imapcopy

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"mailwave/activities"
	"mailwave/contract"
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
// users' or shared namespaces, not virtual folders) and its hierarchy
// delimiter.
func list(cn *conn) ([]*imap.ListData, rune, error) {
	var foreign []string
	if cn.c.Caps().Has(imap.CapNamespace) {
		ns, err := cn.c.Namespace().Wait()
		if err != nil {
			return nil, 0, err
		}
		for _, d := range append(ns.Other, ns.Shared...) {
			if d.Prefix != "" {
				foreign = append(foreign, d.Prefix)
			}
		}
	}
	opts := &imap.ListOptions{}
	if cn.c.Caps().Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	all, err := cn.c.List("", "*", opts).Collect()
	if err != nil {
		return nil, 0, err
	}
	delim := rune(0)
	out := all[:0]
	for _, l := range all {
		if delim == 0 && l.Delim != 0 {
			delim = l.Delim
		}
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) ||
			slices.ContainsFunc(l.Attrs, func(a imap.MailboxAttr) bool { return slices.Contains(virtual, a) }) ||
			slices.ContainsFunc(foreign, func(p string) bool { return strings.HasPrefix(l.Mailbox, p) }) {
			continue
		}
		out = append(out, l)
	}
	if delim == 0 {
		delim = '/'
	}
	return out, delim, nil
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

// planFolders maps every source folder to a target folder and creates
// those the target lacks: the rename map first, then INBOX, then a
// special-use folder to the target's folder of that use, else the same path
// with the target's delimiter. Folders come back INBOX first, then by name.
func (c *Copier) planFolders(src, tgt *conn, key string) ([]folder, error) {
	srcList, srcDelim, err := list(src)
	if err != nil {
		return nil, err
	}
	tgtList, tgtDelim, err := list(tgt)
	if err != nil {
		return nil, err
	}
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
		if other, taken := from[f.tgt]; taken {
			// Two folders' messages in one would confuse the duplicate
			// check and the verification of both: the rename map must
			// tell them apart.
			return nil, activities.Permanent(contract.ErrTypeInvalidMailbox,
				"mailbox %s: source folders %s and %s would both go to target folder %s; add one to the folder map",
				key, label(other), label(f.src), label(f.tgt))
		}
		from[f.tgt] = f.src
		if !exists[f.tgt] {
			if err := create(tgt, f.tgt, f.special, bySpecial[f.special] == ""); err != nil {
				return nil, err
			}
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
	return out, nil
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
