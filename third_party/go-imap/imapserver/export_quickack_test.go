package imapserver

// QuickAcks exposes quickAcks to the tests of package imapserver_test.
var QuickAcks = &quickAcks
