package functions

import (
	"errors"
	"testing"

	"github.com/octostore/octostore/lockcore"
)

// TestHandlerErrorText checks the text a handlerError gives the log: the
// message and the detail joined by ": ", and either alone without a stray
// separator (a store failure during authentication has no message of its
// own, and its log line read ": sqlitestore: …").
func TestHandlerErrorText(t *testing.T) {
	detail := errors.New("sqlitestore: account id by token: database is locked")
	for _, c := range []struct {
		err  *handlerError
		want string
	}{
		{&handlerError{Kind: lockcore.ErrUnavailable, Msg: "store step", Detail: detail}, "store step: " + detail.Error()},
		{&handlerError{Kind: lockcore.ErrUnavailable, Detail: detail}, detail.Error()},
		{&handlerError{Kind: lockcore.ErrUnavailable, Msg: "no detail"}, "no detail"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
		if !errors.Is(c.err, lockcore.ErrUnavailable) {
			t.Errorf("%q does not wrap its kind", c.err.Error())
		}
	}
}
