// Package searchattr names mailwave's search attributes: the one part of the
// contract that is Temporal's own type, kept apart so that the contract's
// data types, and the ports that carry them, import nothing of Temporal.
package searchattr

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Search attributes. Only opaque values go here: never an address or a name
// (Temporal stores and shows them unencrypted).
var (
	Wave       = temporal.NewSearchAttributeKeyKeyword("MailwaveWave")
	Stage      = temporal.NewSearchAttributeKeyKeyword("MailwaveStage")
	StageSince = temporal.NewSearchAttributeKeyTime("MailwaveStageSince")
	// Org is the mailbox's organisation as configured (a trust's
	// name, never a person's).
	Org = temporal.NewSearchAttributeKeyKeyword("MailwaveOrg")
	// ErrorType is the error type of a mailbox that needs support
	// (e.g. MailboxNotFound, BadCredentials); unset otherwise.
	ErrorType = temporal.NewSearchAttributeKeyKeyword("MailwaveErrorType")
	// Paused is true while a mailbox is held by a pause, set as
	// soon as the pause arrives.
	Paused = temporal.NewSearchAttributeKeyBool("MailwavePaused")
)

// All lists every search attribute mailwave uses, in the order
// they are registered. This is the only place their names are written: the
// dev server's flags, `starter search-attributes` and the deploy scripts
// all come from it.
var All = []temporal.SearchAttributeKey{Stage, StageSince, Wave,
	Org, ErrorType, Paused}

// Type is the name the Temporal CLI and server give a search
// attribute's type ("Keyword", "Datetime").
func Type(k temporal.SearchAttributeKey) string {
	switch t := k.GetValueType(); t {
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD:
		return "Keyword"
	case enumspb.INDEXED_VALUE_TYPE_DATETIME:
		return "Datetime"
	case enumspb.INDEXED_VALUE_TYPE_TEXT:
		return "Text"
	case enumspb.INDEXED_VALUE_TYPE_INT:
		return "Int"
	case enumspb.INDEXED_VALUE_TYPE_DOUBLE:
		return "Double"
	case enumspb.INDEXED_VALUE_TYPE_BOOL:
		return "Bool"
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST:
		return "KeywordList"
	default:
		panic(fmt.Sprintf("search attribute %s has an unknown type %v", k.GetName(), t))
	}
}

// Flags returns the `NAME=TYPE` values of the dev server's
// --search-attribute flags, in the order of All.
func Flags() []string {
	out := make([]string, 0, len(All))
	for _, k := range All {
		out = append(out, k.GetName()+"="+Type(k))
	}
	return out
}
