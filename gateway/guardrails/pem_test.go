package guardrails

import "strings"

// fakeKeyLine is a PEM body line that decodes to a note saying it is a
// fixture, so no test file holds anything that looks like a real key.
const fakeKeyLine = "dG9sbGdhdGUtdGVzdC1maXh0dXJlOm5vdC1hLWtleSxvbmx5LWJ5dGVzLWZvci10"

// fakePEM is a PEM block of kind ("PRIVATE KEY", "RSA PRIVATE KEY") with
// the given body lines; the markers are assembled here for the same reason.
func fakePEM(kind string, lines ...string) string {
	const dashes = "-----"
	return dashes + "BEGIN " + kind + dashes + "\n" + strings.Join(lines, "\n") + "\n" + dashes + "END " + kind + dashes
}
