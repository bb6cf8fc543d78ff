package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// suiteProtocolVersion is the protocol version the conformance suite
// negotiates. The go-sdk client would otherwise offer 2026-07-28, under which
// a server may no longer send elicitation requests while serving a call.
const suiteProtocolVersion = "2025-11-25"

// connect serves the fixture in-process and returns a client session that
// answers elicitation requests by accepting a fixed user.
func connect(t *testing.T) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)

	serverT, clientT := mcp.NewInMemoryTransports()
	ss, err := New(&Options{StepDelay: -1}).Connect(ctx, serverT, nil)
	if err != nil {
		t.Fatalf("server connect: %v", err)
	}
	t.Cleanup(func() { _ = ss.Close() })

	client := mcp.NewClient(&mcp.Implementation{Name: "fixture-test", Version: "1.0.0"}, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{
				"username": "testuser", "email": "test@example.com",
			}}, nil
		},
	})
	cs, err := client.Connect(ctx, clientT, &mcp.ClientSessionOptions{ProtocolVersion: suiteProtocolVersion})
	if err != nil {
		t.Fatalf("client connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// firstText returns the text of the first content block, or fails the test.
func firstText(t *testing.T, content []mcp.Content) string {
	t.Helper()
	if len(content) == 0 {
		t.Fatal("no content")
	}
	tc, ok := content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("first content is %T, want *mcp.TextContent", content[0])
	}
	return tc.Text
}

func TestTools(t *testing.T) {
	cs := connect(t)
	ctx := t.Context()

	tests := []struct {
		name     string
		args     map[string]any
		wantErr  bool
		wantText string
	}{
		{name: "test_simple_text", wantText: SimpleText},
		{name: "test_error_handling", wantErr: true, wantText: ErrorText},
		{name: "test_elicitation", args: map[string]any{"message": "who?"}, wantText: `"username":"testuser"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tt.name, Arguments: tt.args})
			if err != nil {
				t.Fatalf("CallTool: %v", err)
			}
			if res.IsError != tt.wantErr {
				t.Errorf("IsError = %v, want %v", res.IsError, tt.wantErr)
			}
			if got := firstText(t, res.Content); !strings.Contains(got, tt.wantText) {
				t.Errorf("text = %q, want it to contain %q", got, tt.wantText)
			}
		})
	}
}

func TestMixedContent(t *testing.T) {
	cs := connect(t)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_multiple_content_types"})
	if err != nil {
		t.Fatalf("CallTool: %v", err)
	}
	if len(res.Content) != 3 {
		t.Fatalf("got %d content blocks, want 3", len(res.Content))
	}
	img, ok := res.Content[1].(*mcp.ImageContent)
	if !ok || img.MIMEType != "image/png" || !strings.HasPrefix(string(img.Data), "\x89PNG") {
		t.Errorf("second block = %#v, want a PNG image", res.Content[1])
	}
	if _, ok := res.Content[2].(*mcp.EmbeddedResource); !ok {
		t.Errorf("third block is %T, want *mcp.EmbeddedResource", res.Content[2])
	}
}

func TestResources(t *testing.T) {
	cs := connect(t)
	ctx := t.Context()

	tests := []struct {
		uri, wantMIME, wantText string
	}{
		{StaticTextURI, "text/plain", StaticText},
		{"test://template/123/data", "application/json", `"id":"123"`},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: tt.uri})
			if err != nil {
				t.Fatalf("ReadResource: %v", err)
			}
			if len(res.Contents) != 1 {
				t.Fatalf("got %d contents, want 1", len(res.Contents))
			}
			c := res.Contents[0]
			if c.URI != tt.uri || c.MIMEType != tt.wantMIME || !strings.Contains(c.Text, tt.wantText) {
				t.Errorf("contents = %+v, want uri %q, mimeType %q, text containing %q", c, tt.uri, tt.wantMIME, tt.wantText)
			}
		})
	}
}

func TestPrompts(t *testing.T) {
	cs := connect(t)
	ctx := t.Context()

	res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_simple_prompt"})
	if err != nil {
		t.Fatalf("GetPrompt simple: %v", err)
	}
	if len(res.Messages) != 1 || res.Messages[0].Role != "user" {
		t.Fatalf("messages = %+v, want one user message", res.Messages)
	}
	if got := firstText(t, []mcp.Content{res.Messages[0].Content}); got != SimplePromptText {
		t.Errorf("text = %q, want %q", got, SimplePromptText)
	}

	res, err = cs.GetPrompt(ctx, &mcp.GetPromptParams{
		Name:      "test_prompt_with_arguments",
		Arguments: map[string]string{"arg1": "hello", "arg2": "world"},
	})
	if err != nil {
		t.Fatalf("GetPrompt with arguments: %v", err)
	}
	want := "Prompt with arguments: arg1='hello', arg2='world'"
	if got := firstText(t, []mcp.Content{res.Messages[0].Content}); got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
}

func TestCompletion(t *testing.T) {
	cs := connect(t)
	res, err := cs.Complete(t.Context(), &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "test_prompt_with_arguments"},
		Argument: mcp.CompleteParamsArgument{Name: "arg1", Value: "par"},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got := strings.Join(res.Completion.Values, ","); got != "paris,park,party" {
		t.Errorf("values = %q, want paris,park,party", got)
	}
}
