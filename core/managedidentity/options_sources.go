package managedidentity

// sourceConfig holds the settings of individual managed-identity sources.
type sourceConfig struct {
	arcKeyDir string // arc.go
}

// WithArcKeyDirectory replaces the one directory from which an Azure Arc challenge may name a key
// file (on Linux /var/opt/azcmagent/tokens; on Windows %ProgramData%\AzureConnectedMachineAgent\
// Tokens). It exists for tests against an emulated agent, which cannot write to the platform
// directory. There is deliberately no environment variable for it: whoever controls the
// environment could otherwise make the client read, and send, any file named *.key.
func WithArcKeyDirectory(dir string) Option {
	return clientOption(func(c *config) { c.sources.arcKeyDir = dir })
}
