package node

import "github.com/alknet/alknet/core"

// parseConfig parses a --config file of a node without plugins.
func parseConfig(data []byte) (core.DynamicConfig, error) {
	pc, err := ParseConfig(data, "", nil)
	if err != nil {
		return core.DynamicConfig{}, err
	}
	return pc.Dynamic, nil
}

// loadConfig reads and parses a --config file of a node without plugins.
func loadConfig(path string) (core.DynamicConfig, error) {
	pc, err := LoadConfig(path, nil)
	if err != nil {
		return core.DynamicConfig{}, err
	}
	return pc.Dynamic, nil
}
