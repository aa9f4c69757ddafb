package contract

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Search attributes. Only opaque values go here: never an address or a name
// (Temporal stores and shows them unencrypted).
var (
	SearchAttrWave       = temporal.NewSearchAttributeKeyKeyword("MailwaveWave")
	SearchAttrStage      = temporal.NewSearchAttributeKeyKeyword("MailwaveStage")
	SearchAttrStageSince = temporal.NewSearchAttributeKeyTime("MailwaveStageSince")
	// SearchAttrOrg is the mailbox's organisation as configured (a trust's
	// name, never a person's).
	SearchAttrOrg = temporal.NewSearchAttributeKeyKeyword("MailwaveOrg")
	// SearchAttrErrorType is the error type of a mailbox that needs support
	// (e.g. MailboxNotFound, BadCredentials); unset otherwise.
	SearchAttrErrorType = temporal.NewSearchAttributeKeyKeyword("MailwaveErrorType")
	// SearchAttrPaused is true while a mailbox is held by a pause, set as
	// soon as the pause arrives.
	SearchAttrPaused = temporal.NewSearchAttributeKeyBool("MailwavePaused")
)

// SearchAttributes lists every search attribute mailwave uses, in the order
// they are registered. This is the only place their names are written: the
// dev server's flags, `starter search-attributes` and the deploy scripts
// all come from it.
var SearchAttributes = []temporal.SearchAttributeKey{SearchAttrStage, SearchAttrStageSince, SearchAttrWave,
	SearchAttrOrg, SearchAttrErrorType, SearchAttrPaused}

// SearchAttributeType is the name the Temporal CLI and server give a search
// attribute's type ("Keyword", "Datetime").
func SearchAttributeType(k temporal.SearchAttributeKey) string {
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

// SearchAttributeFlags returns the `NAME=TYPE` values of the dev server's
// --search-attribute flags, in the order of SearchAttributes.
func SearchAttributeFlags() []string {
	out := make([]string, 0, len(SearchAttributes))
	for _, k := range SearchAttributes {
		out = append(out, k.GetName()+"="+SearchAttributeType(k))
	}
	return out
}
