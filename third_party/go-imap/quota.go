package imap

// QuotaResourceType is a QUOTA resource type.
//
// See RFC 9208 section 5.
type QuotaResourceType string

const (
	QuotaResourceStorage           QuotaResourceType = "STORAGE"
	QuotaResourceMessage           QuotaResourceType = "MESSAGE"
	QuotaResourceMailbox           QuotaResourceType = "MAILBOX"
	QuotaResourceAnnotationStorage QuotaResourceType = "ANNOTATION-STORAGE"
)

// QuotaData is one quota root and the resources it limits, as a QUOTA
// response carries them (RFC 9208 §5.1). Posthouse patch.
type QuotaData struct {
	Root      string
	Resources []QuotaResource // at least one; a resource without a limit is left out
}

// QuotaResource is the usage and limit of one resource of a quota root, in
// the resource's unit (STORAGE: units of 1024 octets). Posthouse patch.
type QuotaResource struct {
	Type  QuotaResourceType
	Usage int64
	Limit int64
}
