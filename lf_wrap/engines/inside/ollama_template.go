// Renders an Ollama TEMPLATE with Go's own text/template and the data Ollama gives a chat
// template (ollama/template/template.go, Execute: System is every system message joined by
// a blank line, Messages the conversation with consecutive messages of one role merged, Tools
// none, Response empty, Think false). lf-wrap runs it with `go run` to prove a Modelfile's
// TEMPLATE renders what the model's chat template renders; it never imports lf-wrap.
//
//	stdin:  {"template": "...", "conversations": [[{"role": "...", "content": "..."}, ...], ...]}
//	stdout: ["rendered text", ...]
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

// Message has the fields of Ollama's api.Message that chat templates read.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type input struct {
	Template      string      `json:"template"`
	Conversations [][]Message `json:"conversations"`
}

// collate is Ollama's: system messages joined, consecutive messages of one role merged.
func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		m := msgs[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == m.Role && m.Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + m.Content
		} else {
			collated = append(collated, &m)
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	tmpl, err := template.New("").Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "TEMPLATE does not parse:", err)
		os.Exit(1)
	}
	out := []string{}
	for _, conv := range in.Conversations {
		system, messages := collate(conv)
		var b bytes.Buffer
		data := map[string]any{"System": system, "Messages": messages, "Tools": nil, "Response": "", "Think": false,
			"IsThinkSet": false}
		if err := tmpl.Execute(&b, data); err != nil {
			fmt.Fprintln(os.Stderr, "TEMPLATE does not render:", err)
			os.Exit(1)
		}
		out = append(out, b.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
