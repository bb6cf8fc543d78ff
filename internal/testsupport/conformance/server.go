// Package conformance provides a fixture MCP server that offers every tool,
// resource, resource template and prompt the server scenarios of the official
// MCP conformance suite (@modelcontextprotocol/conformance) look for.
//
// The suite normally talks to a server directly. vmcp puts this fixture behind
// the gateway instead, so that the suite's verdicts describe the gateway: a
// scenario that passes directly against the fixture but fails through vmcp
// points at the gateway.
//
// Fixture names and payloads follow the scenario descriptions of the suite.
// The server is built on the official go-sdk and leaves ping,
// logging/setLevel, subscription bookkeeping and transport behaviour to it.
package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource URIs served by the fixture.
const (
	StaticTextURI     = "test://static-text"
	StaticBinaryURI   = "test://static-binary"
	WatchedURI        = "test://watched-resource"
	TemplateURI       = "test://template/{id}/data"
	templatePrefix    = "test://template/"
	templateSuffix    = "/data"
	defaultName       = "vmcp-conformance-fixture"
	defaultVersion    = "1.0.0"
	defaultStepDelay  = 50 * time.Millisecond
	defaultRetryDelay = 100 * time.Millisecond
)

// Texts that tests and callers may compare against.
const (
	SimpleText       = "This is a simple text response for testing."
	ErrorText        = "This tool intentionally returns an error for testing"
	StaticText       = "This is the content of the static text resource."
	SimplePromptText = "This is a simple prompt for testing."
)

// Options configures the fixture server. The zero value, and nil, give the
// defaults the conformance suite expects.
type Options struct {
	// Name is the server name reported in the initialize result.
	// The default is "vmcp-conformance-fixture".
	Name string

	// Version is the server version reported in the initialize result.
	// The default is "1.0.0".
	Version string

	// StepDelay is the pause between the notifications that the logging and
	// progress tools send. The default is 50ms; a negative value means no pause.
	StepDelay time.Duration

	// ReconnectDelay is how long test_reconnection waits after closing its
	// SSE stream before it returns its result. The default is 100ms.
	ReconnectDelay time.Duration

	// Logger receives the go-sdk's own log output. Nil discards it.
	Logger *slog.Logger
}

// withDefaults returns a copy of opts with every unset field filled in.
func (opts *Options) withDefaults() Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Name == "" {
		o.Name = defaultName
	}
	if o.Version == "" {
		o.Version = defaultVersion
	}
	if o.StepDelay == 0 {
		o.StepDelay = defaultStepDelay
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = defaultRetryDelay
	}
	return o
}

// fixture holds the settings the handlers share.
type fixture struct {
	opts Options
}

// New builds the fixture server. The result can be served over any go-sdk
// transport; every session shares the same fixtures.
func New(opts *Options) *mcp.Server {
	f := &fixture{opts: opts.withDefaults()}
	server := mcp.NewServer(
		&mcp.Implementation{Name: f.opts.Name, Version: f.opts.Version},
		&mcp.ServerOptions{
			Logger:             f.opts.Logger,
			CompletionHandler:  complete,
			SubscribeHandler:   acceptSubscription,
			UnsubscribeHandler: acceptUnsubscription,
			Capabilities: &mcp.ServerCapabilities{
				Logging: &mcp.LoggingCapabilities{},
			},
		},
	)
	f.addContentTools(server)
	f.addNotifyingTools(server)
	f.addClientRequestTools(server)
	addSchemaTool(server)
	addResources(server)
	addPrompts(server)
	return server
}

// noInput is the argument type of tools that take no arguments.
type noInput struct{}

// textResult wraps a single text block in a tool result.
func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// fixed returns a tool handler that always answers with the given result.
func fixed(result func() *mcp.CallToolResult) mcp.ToolHandlerFor[noInput, any] {
	return func(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
		return result(), nil, nil
	}
}

// addContentTools registers the tools whose answer is fixed content.
func (f *fixture) addContentTools(s *mcp.Server) {
	tools := []struct {
		name, description string
		result            func() *mcp.CallToolResult
	}{
		{"test_simple_text", "Returns a single text block.", simpleTextResult},
		{"test_image_content", "Returns a single PNG image block.", imageResult},
		{"test_audio_content", "Returns a single WAV audio block.", audioResult},
		{"test_embedded_resource", "Returns a single embedded text resource.", embeddedResourceResult},
		{"test_multiple_content_types", "Returns text, image and embedded resource blocks.", mixedResult},
		{"test_error_handling", "Always fails with isError set.", errorResult},
	}
	for _, t := range tools {
		mcp.AddTool(s, &mcp.Tool{Name: t.name, Description: t.description}, fixed(t.result))
	}
}

// simpleTextResult is the answer of test_simple_text.
func simpleTextResult() *mcp.CallToolResult {
	return textResult(SimpleText)
}

// imageResult is the answer of test_image_content.
func imageResult() *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{imageContent()}}
}

// audioResult is the answer of test_audio_content.
func audioResult() *mcp.CallToolResult {
	audio := &mcp.AudioContent{Data: silentWAV(), MIMEType: "audio/wav"}
	return &mcp.CallToolResult{Content: []mcp.Content{audio}}
}

// embeddedResourceResult is the answer of test_embedded_resource.
func embeddedResourceResult() *mcp.CallToolResult {
	res := embeddedText("test://embedded-resource", "text/plain", "This is an embedded resource content.")
	return &mcp.CallToolResult{Content: []mcp.Content{res}}
}

// mixedResult is the answer of test_multiple_content_types.
func mixedResult() *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: "Multiple content types test:"},
		imageContent(),
		embeddedText("test://mixed-content-resource", "application/json", `{"test":"data","value":123}`),
	}}
}

// errorResult is the answer of test_error_handling: a tool-level error, not
// a protocol error.
func errorResult() *mcp.CallToolResult {
	result := textResult(ErrorText)
	result.IsError = true
	return result
}

// imageContent is an image block holding the fixture PNG.
func imageContent() *mcp.ImageContent {
	return &mcp.ImageContent{Data: redPixelPNG(), MIMEType: "image/png"}
}

// embeddedText is an embedded resource block with text contents.
func embeddedText(uri, mimeType, text string) *mcp.EmbeddedResource {
	return &mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: uri, MIMEType: mimeType, Text: text}}
}

// addNotifyingTools registers the tools that send notifications while they
// run, and the tool that drops its own SSE stream.
func (f *fixture) addNotifyingTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_tool_with_logging",
		Description: "Sends three info log notifications while it runs.",
	}, f.withLogging)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_tool_with_progress",
		Description: "Reports progress 0, 50 and 100 of 100 when given a progress token.",
	}, f.withProgress)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_reconnection",
		Description: "Closes its SSE stream mid-call, then answers after the client reconnects (SEP-1699).",
	}, f.reconnection)
}

// pause waits for one step delay, or less if ctx ends first.
func (f *fixture) pause(ctx context.Context) {
	if f.opts.StepDelay <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(f.opts.StepDelay):
	}
}

// withLogging is the handler of test_tool_with_logging.
func (f *fixture) withLogging(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	messages := []string{"Tool execution started", "Tool processing data", "Tool execution completed"}
	for i, msg := range messages {
		if i > 0 {
			f.pause(ctx)
		}
		//lint:ignore SA1019 the suite exercises the logging feature on purpose.
		err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "conformance", Data: msg})
		if err != nil {
			return nil, nil, fmt.Errorf("sending log message: %w", err)
		}
	}
	return textResult("Tool with logging executed successfully"), nil, nil
}

// withProgress is the handler of test_tool_with_progress.
func (f *fixture) withProgress(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	token := req.Params.GetProgressToken()
	for i, step := range []float64{0, 50, 100} {
		if i > 0 {
			f.pause(ctx)
		}
		if token == nil {
			continue
		}
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token,
			Progress:      step,
			Total:         100,
			Message:       fmt.Sprintf("step %.0f of 100", step),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("sending progress: %w", err)
		}
	}
	return textResult("Tool with progress executed successfully"), nil, nil
}

// reconnection is the handler of test_reconnection. Over streamable HTTP it
// closes the request's SSE stream, so the client has to resume it with
// Last-Event-ID to see the result; on other transports it just answers.
func (f *fixture) reconnection(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if req.Extra != nil && req.Extra.CloseSSEStream != nil {
		req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: f.opts.ReconnectDelay / 10})
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(f.opts.ReconnectDelay):
	}
	return textResult("Reconnection test completed: the result arrived after the stream was closed."), nil, nil
}

// promptInput is the argument of test_sampling.
type promptInput struct {
	Prompt string `json:"prompt" jsonschema:"The prompt to send to the LLM"`
}

// messageInput is the argument of test_elicitation.
type messageInput struct {
	Message string `json:"message" jsonschema:"The message to show the user"`
}

// addClientRequestTools registers the tools that send requests back to the
// client: sampling and the three elicitation tools.
func (f *fixture) addClientRequestTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_sampling",
		Description: "Asks the client for an LLM completion of the given prompt.",
	}, sample)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_elicitation",
		Description: "Asks the client for a username and an email address.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, in messageInput) (*mcp.CallToolResult, any, error) {
		return elicit(ctx, req, "User response", in.Message, userSchema)
	})
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_elicitation_sep1034_defaults",
		Description: "Elicits primitive fields that carry default values (SEP-1034).",
	}, elicitFixed("Please review these defaults", defaultsSchema))
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_elicitation_sep1330_enums",
		Description: "Elicits all five enum field variants (SEP-1330).",
	}, elicitFixed("Please pick some options", enumsSchema))
}

// sample is the handler of test_sampling.
func sample(ctx context.Context, req *mcp.CallToolRequest, in promptInput) (*mcp.CallToolResult, any, error) {
	//lint:ignore SA1019 the suite exercises the sampling feature on purpose.
	res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Prompt}}},
		MaxTokens: 100,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sampling: %w", err)
	}
	text := "(non-text response)"
	if tc, ok := res.Content.(*mcp.TextContent); ok {
		text = tc.Text
	}
	return textResult("LLM response: " + text), nil, nil
}

// elicitFixed returns a handler that elicits the given schema with a fixed
// message.
func elicitFixed(message string, schema json.RawMessage) mcp.ToolHandlerFor[noInput, any] {
	return func(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
		return elicit(ctx, req, "Elicitation completed", message, schema)
	}
}

// elicit asks the client to fill in schema and reports the answer as text
// that starts with label.
func elicit(ctx context.Context, req *mcp.CallToolRequest, label, message string, schema json.RawMessage) (*mcp.CallToolResult, any, error) {
	res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: message, RequestedSchema: schema})
	if err != nil {
		return nil, nil, fmt.Errorf("elicitation: %w", err)
	}
	content, err := json.Marshal(res.Content)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding elicitation content: %w", err)
	}
	return textResult(fmt.Sprintf("%s: action=%s, content=%s", label, res.Action, content)), nil, nil
}

// userSchema is the form test_elicitation asks for.
var userSchema = json.RawMessage(`{
	"type": "object",
	"properties": {
		"username": {"type": "string", "description": "User's response"},
		"email": {"type": "string", "description": "User's email address"}
	},
	"required": ["username", "email"]
}`)

// defaultsSchema is the form test_elicitation_sep1034_defaults asks for: one
// field per primitive type, each with a default.
var defaultsSchema = json.RawMessage(`{
	"type": "object",
	"properties": {
		"name": {"type": "string", "description": "Full name", "default": "John Doe"},
		"age": {"type": "integer", "description": "Age in years", "default": 30},
		"score": {"type": "number", "description": "Score", "default": 95.5},
		"status": {"type": "string", "description": "Account status",
			"enum": ["active", "inactive", "pending"], "default": "active"},
		"verified": {"type": "boolean", "description": "Whether the account is verified", "default": true}
	}
}`)

// enumsSchema is the form test_elicitation_sep1330_enums asks for: the five
// enum shapes of SEP-1330.
var enumsSchema = json.RawMessage(`{
	"type": "object",
	"properties": {
		"untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
		"titledSingle": {"type": "string", "oneOf": [
			{"const": "value1", "title": "First Option"},
			{"const": "value2", "title": "Second Option"},
			{"const": "value3", "title": "Third Option"}
		]},
		"legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
			"enumNames": ["Option One", "Option Two", "Option Three"]},
		"untitledMulti": {"type": "array",
			"items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
		"titledMulti": {"type": "array", "items": {"anyOf": [
			{"const": "value1", "title": "First Choice"},
			{"const": "value2", "title": "Second Choice"},
			{"const": "value3", "title": "Third Choice"}
		]}}
	}
}`)

// schemaToolInput is the input schema of json_schema_2020_12_tool. It uses the
// 2020-12 keywords that a gateway must pass through untouched (SEP-1613).
var schemaToolInput = json.RawMessage(`{
	"$schema": "https://json-schema.org/draft/2020-12/schema",
	"type": "object",
	"$defs": {
		"address": {
			"type": "object",
			"properties": {"street": {"type": "string"}, "city": {"type": "string"}}
		}
	},
	"properties": {
		"name": {"type": "string"},
		"address": {"$ref": "#/$defs/address"}
	},
	"additionalProperties": false
}`)

// addSchemaTool registers json_schema_2020_12_tool, which echoes its
// arguments.
func addSchemaTool(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        "json_schema_2020_12_tool",
		Description: "Tool with JSON Schema 2020-12 features",
		InputSchema: schemaToolInput,
	}, func(_ context.Context, _ *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, any, error) {
		args, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		return textResult("Called with " + string(args)), nil, nil
	})
}

// addResources registers the direct resources and the resource template.
func addResources(s *mcp.Server) {
	s.AddResource(&mcp.Resource{
		URI: StaticTextURI, Name: "static-text", MIMEType: "text/plain",
		Description: "A static text resource.",
	}, readText(StaticText))
	s.AddResource(&mcp.Resource{
		URI: StaticBinaryURI, Name: "static-binary", MIMEType: "image/png",
		Description: "A static binary resource: a 1x1 PNG.",
	}, readBinary)
	s.AddResource(&mcp.Resource{
		URI: WatchedURI, Name: "watched-resource", MIMEType: "text/plain",
		Description: "A resource clients may subscribe to.",
	}, readText("Watched resource content."))
	s.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: TemplateURI, Name: "template-data", MIMEType: "application/json",
		Description: "JSON data for the given id.",
	}, readTemplate)
}

// readText returns a resource handler that answers with the given text.
func readText(text string) mcp.ResourceHandler {
	return func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: req.Params.URI, MIMEType: "text/plain", Text: text},
		}}, nil
	}
}

// readBinary is the handler of test://static-binary.
func readBinary(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
		{URI: req.Params.URI, MIMEType: "image/png", Blob: redPixelPNG()},
	}}, nil
}

// readTemplate is the handler of test://template/{id}/data. The go-sdk only
// calls it for URIs that match the template.
func readTemplate(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	id := strings.TrimSuffix(strings.TrimPrefix(req.Params.URI, templatePrefix), templateSuffix)
	data, err := json.Marshal(map[string]any{"id": id, "templateTest": true, "data": "Data for ID: " + id})
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
		{URI: req.Params.URI, MIMEType: "application/json", Text: string(data)},
	}}, nil
}

// acceptSubscription accepts every resources/subscribe request; the go-sdk
// records the subscription itself.
func acceptSubscription(context.Context, *mcp.SubscribeRequest) error { return nil }

// acceptUnsubscription accepts every resources/unsubscribe request; the go-sdk
// drops the subscription itself.
func acceptUnsubscription(context.Context, *mcp.UnsubscribeRequest) error { return nil }

// addPrompts registers the four prompts.
func addPrompts(s *mcp.Server) {
	s.AddPrompt(&mcp.Prompt{
		Name: "test_simple_prompt", Description: "A prompt without arguments.",
	}, simplePrompt)
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_arguments", Description: "A prompt that quotes its two arguments.",
		Arguments: []*mcp.PromptArgument{
			{Name: "arg1", Description: "First test argument", Required: true},
			{Name: "arg2", Description: "Second test argument", Required: true},
		},
	}, argumentsPrompt)
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_embedded_resource", Description: "A prompt that embeds a resource.",
		Arguments: []*mcp.PromptArgument{
			{Name: "resourceUri", Description: "URI of the resource to embed", Required: true},
		},
	}, embeddedResourcePrompt)
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_image", Description: "A prompt that contains an image.",
	}, imagePrompt)
}

// userMessages turns content blocks into a prompt result of user messages.
func userMessages(description string, content ...mcp.Content) *mcp.GetPromptResult {
	result := &mcp.GetPromptResult{Description: description}
	for _, c := range content {
		result.Messages = append(result.Messages, &mcp.PromptMessage{Role: "user", Content: c})
	}
	return result
}

// simplePrompt is the handler of test_simple_prompt.
func simplePrompt(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return userMessages("A simple prompt", &mcp.TextContent{Text: SimplePromptText}), nil
}

// argumentsPrompt is the handler of test_prompt_with_arguments.
func argumentsPrompt(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	args := req.Params.Arguments
	text := fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", args["arg1"], args["arg2"])
	return userMessages("A prompt with arguments", &mcp.TextContent{Text: text}), nil
}

// embeddedResourcePrompt is the handler of test_prompt_with_embedded_resource.
func embeddedResourcePrompt(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	uri := req.Params.Arguments["resourceUri"]
	if uri == "" {
		return nil, fmt.Errorf("missing required argument resourceUri")
	}
	return userMessages("A prompt with an embedded resource",
		embeddedText(uri, "text/plain", "Embedded resource content for testing."),
		&mcp.TextContent{Text: "Please process the embedded resource above."},
	), nil
}

// imagePrompt is the handler of test_prompt_with_image.
func imagePrompt(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return userMessages("A prompt with an image",
		imageContent(),
		&mcp.TextContent{Text: "Please analyze the image above."},
	), nil
}

// completionCandidates lists, per argument name, the values completion/complete
// offers. arg1 and arg2 belong to test_prompt_with_arguments, id to the
// resource template.
var completionCandidates = map[string][]string{
	"arg1": {"paris", "park", "party", "test", "testing"},
	"arg2": {"alpha", "beta", "gamma"},
	"id":   {"1", "2", "3", "123"},
}

// complete answers completion/complete with the candidates for the argument
// that start with the typed prefix.
func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	arg := req.Params.Argument
	values := []string{}
	for _, v := range completionCandidates[arg.Name] {
		if strings.HasPrefix(v, arg.Value) {
			values = append(values, v)
		}
	}
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{
		Values: values, Total: len(values),
	}}, nil
}

// redPixelPNG encodes a 1x1 red image as PNG.
func redPixelPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(fmt.Sprintf("encoding fixture PNG: %v", err)) // cannot happen for an in-memory image
	}
	return buf.Bytes()
}

// silentWAV encodes 10ms of 8kHz 16-bit mono silence as a RIFF/WAVE file.
func silentWAV() []byte {
	const (
		rate     = 8000
		channels = 1
		bits     = 16
		samples  = rate / 100
		dataSize = samples * channels * bits / 8
	)
	var buf bytes.Buffer
	le := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) } // bytes.Buffer writes do not fail
	buf.WriteString("RIFF")
	le(uint32(36 + dataSize))
	buf.WriteString("WAVEfmt ")
	le(uint32(16))                         // fmt chunk size
	le(uint16(1))                          // PCM
	le(uint16(channels))                   // channel count
	le(uint32(rate))                       // sample rate
	le(uint32(rate * channels * bits / 8)) // byte rate
	le(uint16(channels * bits / 8))        // block align
	le(uint16(bits))                       // bits per sample
	buf.WriteString("data")
	le(uint32(dataSize))
	buf.Write(make([]byte, dataSize))
	return buf.Bytes()
}
