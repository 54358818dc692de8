package maildir

import "github.com/posthouse/posthouse/mailstore/indexrow"

// The index row's encoding is shared with the other backends (package
// indexrow); these are its names here.

const (
	flagSeen       = indexrow.FlagSeen
	flagAnswered   = indexrow.FlagAnswered
	flagFlagged    = indexrow.FlagFlagged
	flagDeleted    = indexrow.FlagDeleted
	flagDraft      = indexrow.FlagDraft
	flagAll        = indexrow.FlagAll
	maxKeywords    = indexrow.MaxKeywords
	maxHeaderBytes = indexrow.MaxHeaderBytes
	maxCacheDepth  = indexrow.MaxCacheDepth
	opAdd          = indexrow.OpAdd
	opRemove       = indexrow.OpRemove
	opSet          = indexrow.OpSet
)

type (
	flagSet = indexrow.FlagSet
	flagOp  = indexrow.FlagOp
	parsed  = indexrow.Parsed
)

var (
	flagList            = indexrow.FlagList
	parseFlags          = indexrow.ParseFlags
	validKeyword        = indexrow.ValidKeyword
	applyFlags          = indexrow.ApplyFlags
	containsFold        = indexrow.ContainsFold
	joinKeywords        = indexrow.JoinKeywords
	hasFlag             = indexrow.HasFlag
	encodeEnvelope      = indexrow.EncodeEnvelope
	decodeEnvelope      = indexrow.DecodeEnvelope
	encodeBodyStructure = indexrow.EncodeBodyStructure
	decodeBodyStructure = indexrow.DecodeBodyStructure
	dateNum             = indexrow.DateNum
	emailID             = indexrow.EmailID
	parseEmailID        = indexrow.ParseEmailID
	parseMessage        = indexrow.ParseMessage
	encodeParsed        = indexrow.EncodeParsed
)
