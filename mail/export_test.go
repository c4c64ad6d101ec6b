package mail

// WakeDelay is wakeDelay, for the timing tests of package mail_test.
const WakeDelay = wakeDelay
