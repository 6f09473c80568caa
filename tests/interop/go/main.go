// A Go client of chunkwise, held to the contract against a live server.
//
//	CHUNKWISE_ADDRESS=127.0.0.1:50051 chunkwise-interop
//
// It builds in GOPATH mode from Debian's packages (grpc-go 1.33, so grpc.Dial and
// grpc.WithInsecure), with stubs that protoc-gen-go and protoc-gen-go-grpc write from
// protos/ at build time: `make interop-go`. Every id has a random suffix, so it can run twice
// against one server. It prints one line per check and exits 1 when any check fails.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	chunkwisev1 "chunkwise/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Generous: a busy machine can be slow, and a deadline only matters when something hangs.
const deadline = 30 * time.Second

// Final responses and GetCompleteText can be larger than gRPC's default 4 MiB receive limit.
const maxReceiveBytes = 64 << 20

var runID = randomSuffix()

func randomSuffix() string {
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(suffix)
}

func id(name string) string { return "go-" + name + "-" + runID }

// failure is what expect panics with; run recovers it, so a check reads top to bottom like
// a test and stops at its first mismatch.
type failure struct{ message string }

func expect(ok bool, format string, args ...interface{}) {
	if !ok {
		panic(failure{fmt.Sprintf(format, args...)})
	}
}

func expectEqual(what string, got, want interface{}) {
	expect(reflect.DeepEqual(got, want), "%s: got %s, want %s", what, show(got), show(want))
}

func expectNoError(what string, err error) {
	expect(err == nil, "%s: %v", what, err)
}

func show(value interface{}) string {
	if text, err := json.Marshal(value); err == nil {
		return string(text)
	}
	return fmt.Sprintf("%#v", value)
}

func dial(address string) *grpc.ClientConn {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	conn, err := grpc.DialContext(ctx, address, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxReceiveBytes)))
	expectNoError("connecting to "+address, err)
	return conn
}

// conversation is one ProcessChunks stream.
type conversation struct {
	stream chunkwisev1.StreamingParser_ProcessChunksClient
	cancel context.CancelFunc
}

func open(client chunkwisev1.StreamingParserClient) *conversation {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	stream, err := client.ProcessChunks(ctx)
	expectNoError("ProcessChunks", err)
	return &conversation{stream: stream, cancel: cancel}
}

// send writes one request and waits for its response.
func (c *conversation) send(request *chunkwisev1.ProcessChunksRequest) *chunkwisev1.ProcessChunksResponse {
	expectNoError("send", c.stream.Send(request))
	response, err := c.stream.Recv()
	expectNoError("receive", err)
	return response
}

// sendAll writes every request while reading their responses: one per request, in order.
func (c *conversation) sendAll(requests []*chunkwisev1.ProcessChunksRequest) []*chunkwisev1.ProcessChunksResponse {
	sent := make(chan error, 1)
	go func() {
		for _, request := range requests {
			if err := c.stream.Send(request); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	responses := make([]*chunkwisev1.ProcessChunksResponse, 0, len(requests))
	for range requests {
		response, err := c.stream.Recv()
		expectNoError(fmt.Sprintf("receive response %d", len(responses)+1), err)
		responses = append(responses, response)
	}
	expectNoError("send", <-sent)
	return responses
}

// close half-closes the stream and checks that the server ends it with OK and nothing more.
func (c *conversation) close() {
	defer c.cancel()
	expectNoError("close", c.stream.CloseSend())
	response, err := c.stream.Recv()
	expect(response == nil, "a response nobody asked for: %v", response)
	expect(err == io.EOF, "the stream ended with %v, want OK", err)
}

// pointer splits an RFC 6901 JSON pointer: "" is the whole value; "/a~1b/0" is ["a/b", "0"].
func pointer(path string) []string {
	if path == "" {
		return nil
	}
	expect(strings.HasPrefix(path, "/"), "not a JSON pointer: %q", path)
	tokens := strings.Split(path[1:], "/")
	for i, token := range tokens {
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
	}
	return tokens
}

// decodeJSON reads exactly one JSON value; numbers stay as written (json.Number), so a
// number too big for a float64 compares exactly.
func decodeJSON(text string) interface{} {
	decoder := json.NewDecoder(strings.NewReader(text))
	decoder.UseNumber()
	var value interface{}
	expectNoError(fmt.Sprintf("decoding %q", text), decoder.Decode(&value))
	_, err := decoder.Token()
	expect(err == io.EOF, "more than one JSON value in %q", text)
	return value
}

// jsonBuilder rebuilds one id's JSON value from the json processor's deltas, in order:
// set_json puts a value at a path (an array index equal to the length adds an element),
// append adds text to the string at a path.
type jsonBuilder struct {
	value interface{}
	empty bool
}

func newJSONBuilder() *jsonBuilder { return &jsonBuilder{empty: true} }

func (b *jsonBuilder) apply(response *chunkwisev1.ProcessChunksResponse) {
	if response.GetReset_() {
		b.value, b.empty = nil, true
	}
	for _, delta := range response.GetOutput().GetJson().GetDeltas() {
		switch op := delta.Op.(type) {
		case *chunkwisev1.JsonDelta_SetJson:
			value := decodeJSON(op.SetJson)
			b.update(delta.Path, func(interface{}) interface{} { return value })
		case *chunkwisev1.JsonDelta_Append:
			b.update(delta.Path, func(old interface{}) interface{} {
				text, isString := old.(string)
				expect(isString, "append at %q: %s is not a string", delta.Path, show(old))
				return text + op.Append
			})
		default:
			expect(false, "a JsonDelta at %q with no op", delta.Path)
		}
	}
}

func (b *jsonBuilder) update(path string, change func(interface{}) interface{}) {
	tokens := pointer(path)
	if len(tokens) == 0 {
		b.value, b.empty = change(b.value), false
		return
	}
	expect(!b.empty, "a delta at %q before the value began", path)
	b.value = updateAt(b.value, tokens, path, change)
}

// updateAt returns node with change applied at tokens: a Go slice that grows is a new
// slice, so every level hands its container back to the one above.
func updateAt(node interface{}, tokens []string, path string, change func(interface{}) interface{}) interface{} {
	token, rest := tokens[0], tokens[1:]
	switch container := node.(type) {
	case map[string]interface{}:
		old, found := container[token]
		expect(found || len(rest) == 0, "%q: no key %q", path, token)
		if len(rest) == 0 {
			container[token] = change(old)
		} else {
			container[token] = updateAt(old, rest, path, change)
		}
		return container
	case []interface{}:
		index, err := strconv.Atoi(token)
		expect(err == nil && strconv.Itoa(index) == token && index <= len(container),
			"%q: %q is not an index of an array of %d", path, token, len(container))
		if index == len(container) {
			expect(len(rest) == 0, "%q: no element %d", path, index)
			return append(container, change(nil))
		}
		if len(rest) == 0 {
			container[index] = change(container[index])
		} else {
			container[index] = updateAt(container[index], rest, path, change)
		}
		return container
	default:
		expect(false, "%q: %s is not a container", path, show(node))
		return nil
	}
}

// The json document: multi-byte text (é, 😀) raw and as \u escapes (a surrogate pair too),
// \n and other escapes, a key that needs ~ and / escaped in a pointer, a number too big for a
// float64, every literal, empty and nested containers, and a repeated key (the last value
// wins). The pieces split it inside escapes, between the halves of the escaped surrogate
// pair, inside keys, literals and numbers. A chunk never splits a code point: a proto string
// is UTF-8, and Go's protobuf refuses to send one that is not.
var pieces = []string{
	` {"gree`,
	`ting": "caf\u00`,
	`e9 é `,
	`😀`,
	` \ud83d`,
	`\ude`,
	`00 line1\`,
	`nline2 \"quo`,
	`ted\" back\`,
	`\slash \t\u0`,
	`041 \/", "a/`,
	`b~c": [1, -2.`,
	`5e3, tr`,
	`ue, fal`,
	`se, nu`,
	`ll, "x", `,
	`""], "nested": {"empty_obj": {`,
	`}, "empty_arr": [`,
	`], "deep": [[{"k": "v😀`,
	`"}]]}, "big": 1234567890`,
	`1234567890`,
	`, "dup": 1, "dup": "sec`,
	`ond", "é😀": "\u00e9"}`,
	"\n",
}

var document = strings.Join(pieces, "")

// rebuild sends chunks as one json id in APPEND mode, the last one final, checks every
// response and returns the value its deltas rebuilt.
func rebuild(client chunkwisev1.StreamingParserClient, chunkID string, chunks []string) interface{} {
	requests := make([]*chunkwisev1.ProcessChunksRequest, len(chunks))
	for i, chunk := range chunks {
		requests[i] = &chunkwisev1.ProcessChunksRequest{
			ChunkId:  chunkID,
			Chunk:    chunk,
			Sequence: uint64(i + 1),
			Final:    i == len(chunks)-1,
		}
	}
	// The first request fixes the id's processor and mode; later ones may leave them unset.
	requests[0].ProcessorType = "json"
	requests[0].Mode = chunkwisev1.DeltaMode_DELTA_MODE_APPEND
	talk := open(client)
	responses := talk.sendAll(requests)
	talk.close()
	builder := newJSONBuilder()
	var text strings.Builder
	for i, response := range responses {
		what := fmt.Sprintf("chunk %d %q", i, chunks[i])
		expect(response.Error == nil, "%s: error %v", what, response.Error)
		expectEqual(what+": chunk_id", response.ChunkId, chunkID)
		expectEqual(what+": sequence", response.Sequence, uint64(i+1))
		expectEqual(what+": delta (APPEND: the chunk)", response.Delta, chunks[i])
		expect(!response.Reset_ && !response.Duplicate, "%s: reset or duplicate", what)
		text.WriteString(response.Delta)
		builder.apply(response)
	}
	final := responses[len(responses)-1]
	expect(final.Final, "the last response is not final")
	expectEqual("complete_text", final.CompleteText, document)
	expectEqual("the deltas joined", text.String(), document)
	want := decodeJSON(document)
	expect(!builder.empty, "no JsonDelta built a value")
	expectEqual("the value the deltas rebuilt", builder.value, want)
	expectEqual("value_json", decodeJSON(final.GetOutput().GetJson().GetValueJson()), want)
	return builder.value
}

func checkJSONPieces(client chunkwisev1.StreamingParserClient) {
	value := rebuild(client, id("json-pieces"), pieces).(map[string]interface{})
	expectEqual("greeting", value["greeting"], "café é 😀 😀 line1\nline2 \"quoted\" back\\slash \tA /")
	expectEqual("a/b~c", value["a/b~c"].([]interface{})[1], json.Number("-2.5e3"))
	expectEqual("big", value["big"], json.Number("12345678901234567890"))
	expectEqual("dup", value["dup"], "second")
}

func checkJSONCodePoints(client chunkwisev1.StreamingParserClient) {
	var codePoints []string
	for _, r := range document {
		codePoints = append(codePoints, string(r))
	}
	rebuild(client, id("json-code-points"), codePoints)
}

// step is one text chunk and the delta it should get; reset marks a SNAPSHOT rewrite.
type step struct {
	chunk, delta string
	reset        bool
}

func checkTextMode(client chunkwisev1.StreamingParserClient, name string,
	mode chunkwisev1.DeltaMode, steps []step, complete string) {
	talk := open(client)
	chunkID := id(name)
	for i, s := range steps {
		final := i == len(steps)-1
		response := talk.send(&chunkwisev1.ProcessChunksRequest{
			ChunkId: chunkID, Chunk: s.chunk, Mode: mode, Sequence: uint64(i + 1), Final: final,
		})
		what := fmt.Sprintf("%s, chunk %d %q", name, i, s.chunk)
		expect(response.Error == nil, "%s: error %v", what, response.Error)
		expect(response.Output == nil, "%s: text has no output, got %v", what, response.Output)
		expectEqual(what+": delta", response.Delta, s.delta)
		expectEqual(what+": reset", response.Reset_, s.reset)
		expectEqual(what+": final", response.Final, final)
		if final {
			expectEqual(what+": complete_text", response.CompleteText, complete)
		} else {
			expectEqual(what+": complete_text (only on a final)", response.CompleteText, "")
		}
	}
	talk.close()
}

func checkTextModes(client chunkwisev1.StreamingParserClient) {
	checkTextMode(client, "auto", chunkwisev1.DeltaMode_DELTA_MODE_AUTO, []step{
		{chunk: "Hel", delta: "Hel"},  // nothing seen yet: the whole chunk
		{chunk: "Hello", delta: "lo"}, // starts with the previous chunk
		{chunk: "Hello wor", delta: " wor"},
		{chunk: "ld!", delta: "ld!"},                   // unrelated: the whole chunk
		{chunk: ">> ld! and more", delta: " and more"}, // the previous chunk inside it
	}, "Hello world! and more")
	// It guesses: a fragment that repeats the previous chunk is taken for a snapshot, and lost.
	checkTextMode(client, "auto-lossy", chunkwisev1.DeltaMode_DELTA_MODE_AUTO,
		[]step{{chunk: "ha", delta: "ha"}, {chunk: "ha", delta: ""}}, "ha")
	// UNSPECIFIED on a new id is AUTO, and an empty processor_type is text.
	checkTextMode(client, "auto-default", chunkwisev1.DeltaMode_DELTA_MODE_UNSPECIFIED,
		[]step{{chunk: "ab", delta: "ab"}, {chunk: "abc", delta: "c"}}, "abc")
	checkTextMode(client, "append", chunkwisev1.DeltaMode_DELTA_MODE_APPEND, []step{
		{chunk: "ha", delta: "ha"}, {chunk: "ha", delta: "ha"}, {chunk: "", delta: ""},
		{chunk: " é😀", delta: " é😀"}, {chunk: "\n", delta: "\n"},
	}, "haha é😀\n")
	checkTextMode(client, "snapshot", chunkwisev1.DeltaMode_DELTA_MODE_SNAPSHOT, []step{
		{chunk: "Hello", delta: "Hello"},
		{chunk: "Hello", delta: ""}, // equal: empty delta, no reset
		{chunk: "Hello, wor", delta: ", wor"},
		{chunk: "Help", delta: "Help", reset: true}, // a rewrite: the whole new text
		{chunk: "Help!", delta: "!"},
		{chunk: "Hel", delta: "Hel", reset: true}, // shorter is a rewrite too
		{chunk: "Hel😀", delta: "😀"},
	}, "Hel😀")
}

func unaryContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), deadline)
}

func expectCode(what string, err error, want codes.Code) {
	expect(status.Code(err) == want, "%s: got status %v (%v), want %v", what, status.Code(err), err, want)
}

func checkSecondConnection(client chunkwisev1.StreamingParserClient, address string) {
	// A ClientConn of its own is a connection of its own.
	conn := dial(address)
	defer conn.Close()
	other := chunkwisev1.NewStreamingParserClient(conn)
	chunkID := id("shared")
	talk := open(client)
	for i, chunk := range []string{"caf", "é ", "😀"} {
		response := talk.send(&chunkwisev1.ProcessChunksRequest{
			ChunkId: chunkID, Chunk: chunk, Mode: chunkwisev1.DeltaMode_DELTA_MODE_APPEND,
			Sequence: uint64(10 * (i + 1)),
		})
		expect(response.Error == nil, "chunk %d: error %v", i, response.Error)
	}
	ctx, cancel := unaryContext()
	defer cancel()
	text, err := other.GetCompleteText(ctx, &chunkwisev1.GetCompleteTextRequest{ChunkId: chunkID})
	expectNoError("GetCompleteText", err)
	expectEqual("text", text.Text, "café 😀")
	expectEqual("last_sequence", text.LastSequence, uint64(30))
	expectEqual("processor_type", text.ProcessorType, "text")
	talk.close()
	// State outlives the stream.
	text, err = other.GetCompleteText(ctx, &chunkwisev1.GetCompleteTextRequest{ChunkId: chunkID})
	expectNoError("GetCompleteText after the stream ended", err)
	expectEqual("text after the stream ended", text.Text, "café 😀")
	_, err = client.ClearChunk(ctx, &chunkwisev1.ClearChunkRequest{ChunkId: chunkID})
	expectNoError("ClearChunk", err)
}

func checkClearTwice(client chunkwisev1.StreamingParserClient) {
	chunkID := id("clear")
	talk := open(client)
	talk.send(&chunkwisev1.ProcessChunksRequest{
		ChunkId: chunkID, Chunk: "text", Mode: chunkwisev1.DeltaMode_DELTA_MODE_APPEND,
	})
	talk.close()
	ctx, cancel := unaryContext()
	defer cancel()
	cleared, err := client.ClearChunk(ctx, &chunkwisev1.ClearChunkRequest{ChunkId: chunkID})
	expectNoError("the first ClearChunk", err)
	expect(cleared.Cleared, "the first ClearChunk: cleared = false, want true")
	// Idempotent: nothing left to clear is not an error.
	cleared, err = client.ClearChunk(ctx, &chunkwisev1.ClearChunkRequest{ChunkId: chunkID})
	expectNoError("the second ClearChunk", err)
	expect(!cleared.Cleared, "the second ClearChunk: cleared = true, want false")
	_, err = client.GetCompleteText(ctx, &chunkwisev1.GetCompleteTextRequest{ChunkId: chunkID})
	expectCode("GetCompleteText of a cleared id", err, codes.NotFound)
}

func checkNotFound(client chunkwisev1.StreamingParserClient) {
	ctx, cancel := unaryContext()
	defer cancel()
	_, err := client.GetCompleteText(ctx, &chunkwisev1.GetCompleteTextRequest{ChunkId: id("never-sent")})
	expectCode("GetCompleteText of an id never sent", err, codes.NotFound)
}

func checkInvalidArgument(client chunkwisev1.StreamingParserClient) {
	chunkID := id("unknown-processor")
	talk := open(client)
	refused := talk.send(&chunkwisev1.ProcessChunksRequest{
		ChunkId: chunkID, Chunk: "{}", ProcessorType: "no-such-processor", Sequence: 7,
	})
	expect(refused.Error != nil, "an unknown processor got no error")
	expectEqual("unknown processor: error code", codes.Code(refused.Error.Code), codes.InvalidArgument)
	expect(strings.Contains(refused.Error.Message, "no-such-processor"),
		"the error does not name the processor: %q", refused.Error.Message)
	expectEqual("unknown processor: chunk_id", refused.ChunkId, chunkID)
	expectEqual("unknown processor: sequence", refused.Sequence, uint64(7))
	expect(!refused.Final, "a refused request closed the id")
	noID := talk.send(&chunkwisev1.ProcessChunksRequest{Chunk: "x"})
	expect(noID.Error != nil && codes.Code(noID.Error.Code) == codes.InvalidArgument,
		"an empty chunk id: error %v, want INVALID_ARGUMENT", noID.Error)
	// proto3 lets a client send a number outside the enum.
	badMode := talk.send(&chunkwisev1.ProcessChunksRequest{ChunkId: chunkID, Chunk: "x", Mode: 7})
	expect(badMode.Error != nil && codes.Code(badMode.Error.Code) == codes.InvalidArgument,
		"mode 7: error %v, want INVALID_ARGUMENT", badMode.Error)
	// Nothing was tracked for the refused id ...
	ctx, cancel := unaryContext()
	defer cancel()
	_, err := client.GetCompleteText(ctx, &chunkwisev1.GetCompleteTextRequest{ChunkId: chunkID})
	expectCode("GetCompleteText of a refused id", err, codes.NotFound)
	// ... and the same stream goes on.
	accepted := talk.send(&chunkwisev1.ProcessChunksRequest{
		ChunkId: chunkID, Chunk: `["ok"]`, ProcessorType: "json",
		Mode: chunkwisev1.DeltaMode_DELTA_MODE_APPEND, Final: true,
	})
	expect(accepted.Error == nil, "after the refusals: error %v", accepted.Error)
	expectEqual("after the refusals: complete_text", accepted.CompleteText, `["ok"]`)
	builder := newJSONBuilder()
	builder.apply(accepted)
	expectEqual("after the refusals: value", builder.value, []interface{}{"ok"})
	talk.close()
}

func checkListProcessors(client chunkwisev1.StreamingParserClient) {
	ctx, cancel := unaryContext()
	defer cancel()
	listed, err := client.ListProcessors(ctx, &chunkwisev1.ListProcessorsRequest{})
	expectNoError("ListProcessors", err)
	names := map[string]bool{}
	for _, processor := range listed.Processors {
		names[processor.Name] = true
	}
	for _, name := range []string{"dashboard", "json", "metric", "plan", "search_data_catalog", "text"} {
		expect(names[name], "ListProcessors does not name %q", name)
	}
}

// runCheck runs one check and reports its first mismatch, or any other panic, as an error.
func runCheck(check func()) (err error) {
	defer func() {
		switch caught := recover().(type) {
		case nil:
		case failure:
			err = errors.New(caught.message)
		default:
			err = fmt.Errorf("panic: %v", caught)
		}
	}()
	check()
	return nil
}

func main() {
	address := os.Getenv("CHUNKWISE_ADDRESS")
	if address == "" {
		fmt.Fprintln(os.Stderr, "set CHUNKWISE_ADDRESS to a running chunkwise server's host:port")
		os.Exit(2)
	}
	var conn *grpc.ClientConn
	if err := runCheck(func() { conn = dial(address) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	client := chunkwisev1.NewStreamingParserClient(conn)
	checks := []struct {
		name string
		run  func()
	}{
		{"json in APPEND mode: every delta applied rebuilds the parsed text", func() { checkJSONPieces(client) }},
		{"json in APPEND mode, one code point per chunk", func() { checkJSONCodePoints(client) }},
		{"text in AUTO, APPEND and SNAPSHOT modes", func() { checkTextModes(client) }},
		{"GetCompleteText from a second connection", func() { checkSecondConnection(client, address) }},
		{"ClearChunk twice: cleared, then nothing to clear", func() { checkClearTwice(client) }},
		{"GetCompleteText of an unknown id is NOT_FOUND", func() { checkNotFound(client) }},
		{"a bad request gets INVALID_ARGUMENT and the stream goes on", func() { checkInvalidArgument(client) }},
		{"ListProcessors names the built-in processors", func() { checkListProcessors(client) }},
	}
	failed := 0
	for _, check := range checks {
		if err := runCheck(check.run); err != nil {
			failed++
			fmt.Printf("FAIL %s\n     %v\n", check.name, err)
		} else {
			fmt.Printf("ok   %s\n", check.name)
		}
	}
	fmt.Printf("go client: %d passed, %d failed\n", len(checks)-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
