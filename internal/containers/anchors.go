package containers

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v4"
)

// checkAnchors refuses a YAML alias inside the node its anchor names, as
// in `x: &a {<<: *a}`. Such a cycle is no compose file, and compose-go
// takes tens of seconds of CPU to give up on one through a merge key. The
// file is read with compose-go's own YAML parser, which takes what
// yaml.v3 refuses (a DEL in a key); a file that does not parse is left
// for compose-go to report.
func checkAnchors(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return nil
	}
	open := map[*yaml.Node]bool{} // the node being walked and its ancestors
	done := map[*yaml.Node]bool{} // walked already: each node once, however many aliases name it
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		if done[n] {
			return nil
		}
		open[n] = true
		children := n.Content
		if n.Kind == yaml.AliasNode {
			if open[n.Alias] {
				return fmt.Errorf("line %d: alias *%s is inside the node its anchor names", n.Line, n.Value)
			}
			children = []*yaml.Node{n.Alias}
		}
		for _, c := range children {
			if err := walk(c); err != nil {
				return err
			}
		}
		open[n], done[n] = false, true
		return nil
	}
	return walk(&doc)
}
