package postgres

import "github.com/posthouse/posthouse/mailstore/indexrow"

// The index row's encoding is shared with the other backends (package
// indexrow); these are its names here.

const (
	flagDeleted    = indexrow.FlagDeleted
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
	applyFlags          = indexrow.ApplyFlags
	joinKeywords        = indexrow.JoinKeywords
	hasFlag             = indexrow.HasFlag
	decodeEnvelope      = indexrow.DecodeEnvelope
	decodeBodyStructure = indexrow.DecodeBodyStructure
	dateNum             = indexrow.DateNum
	emailID             = indexrow.EmailID
	parseEmailID        = indexrow.ParseEmailID
	parseMessage        = indexrow.ParseMessage
	encodeParsed        = indexrow.EncodeParsed
)
