// Package logfold folds repeated log lines: of identical denials (one
// key: reason, name, destination) a tenant causes, the first burst per
// window is logged and the rest counted, reported on the next line logged
// ("suppressed_before"), so a tenant hammering a blocked address cannot
// flood the journal and no denial goes uncounted. Memory is bounded per
// tenant and in all; one tenant's denials never fold another's.
package logfold
