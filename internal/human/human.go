// Package human renders quantities the way operators read them, for the CLI and the
// console alike.
package human

import "fmt"

// Bytes renders a byte count in binary units: 512 B, 3.0 KiB, 1.2 GiB.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
