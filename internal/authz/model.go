// Package authz decides, with Cedar policies, what each principal may list
// and call, and explains every decision.
//
// # Entity model
//
// All types live in the Vmcp namespace:
//
//   - the principal is Vmcp::User::"<subject>" (the stable subject of the
//     caller). Its attributes are the caller's claims, resolved from the
//     sources listed in [Resolve]; its parents are Vmcp::Group::"<g>" for
//     each group claim value and Vmcp::Role::"<r>" for each role.
//   - actions are Vmcp::Action::"call_tool", "list_tools", "read_resource",
//     "list_resources", "get_prompt" and "list_prompts"; each belongs to an
//     action group: Vmcp::Action::"tools", "resources" or "prompts".
//   - resources are Vmcp::Tool::"<advertised name>", Vmcp::Prompt::"<name>"
//     and Vmcp::Resource::"<exact URI>" (resource templates are matched by
//     the URI read), each with attributes name (or uri) and backend, and
//     the parent Vmcp::Server::"<config name>". The list actions' resource
//     is that server.
//   - the context holds claims (the same record as the principal's
//     attributes), arguments (a tool call's arguments), annotations (the
//     tool's annotations) and operation (the MCP method).
//
// A list contains exactly the items the principal may call, read or get:
// listing and calling share one decision. Listing also needs the list
// action on the server.
//
// This package knows nothing about HTTP, tokens or backends.
package authz

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
)

// Entity types.
const (
	TypeUser     types.EntityType = "Vmcp::User"
	TypeGroup    types.EntityType = "Vmcp::Group"
	TypeRole     types.EntityType = "Vmcp::Role"
	TypeTool     types.EntityType = "Vmcp::Tool"
	TypePrompt   types.EntityType = "Vmcp::Prompt"
	TypeResource types.EntityType = "Vmcp::Resource"
	TypeServer   types.EntityType = "Vmcp::Server"
	TypeAction   types.EntityType = "Vmcp::Action"
)

// Action names one MCP operation.
type Action string

// Actions.
const (
	CallTool      Action = "call_tool"
	ListTools     Action = "list_tools"
	ReadResource  Action = "read_resource"
	ListResources Action = "list_resources"
	GetPrompt     Action = "get_prompt"
	ListPrompts   Action = "list_prompts"
)

// actionGroups maps each action to its group.
var actionGroups = map[Action]string{
	CallTool: "tools", ListTools: "tools",
	ReadResource: "resources", ListResources: "resources",
	GetPrompt: "prompts", ListPrompts: "prompts",
}

// ParseAction accepts an action name with or without its Vmcp::Action
// wrapping.
func ParseAction(s string) (Action, error) {
	s = strings.TrimPrefix(s, `Vmcp::Action::`)
	s = strings.Trim(s, `"`)
	a := Action(s)
	if _, ok := actionGroups[a]; !ok {
		return "", fmt.Errorf("unknown action %q (one of call_tool, list_tools, read_resource, list_resources, get_prompt, list_prompts)", s)
	}
	return a, nil
}

// UID returns the action's entity id.
func (a Action) UID() types.EntityUID { return types.NewEntityUID(TypeAction, types.String(a)) }

// actionEntities are the action entities with their groups.
func actionEntities() types.EntityMap {
	m := types.EntityMap{}
	for a, g := range actionGroups {
		group := types.NewEntityUID(TypeAction, types.String(g))
		m[a.UID()] = types.Entity{UID: a.UID(), Parents: types.NewEntityUIDSet(group)}
		m[group] = types.Entity{UID: group}
	}
	return m
}

// toValue converts a JSON value (as encoding/json decodes into any) to a
// Cedar value. Numbers become Long when whole, else Decimal; null has no
// Cedar value (ok is false) and such attributes are left out.
func toValue(v any) (types.Value, bool) {
	switch v := v.(type) {
	case string:
		return types.String(v), true
	case bool:
		return types.Boolean(v), true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return types.Long(int64(v)), true
		}
		d, err := types.NewDecimalFromFloat(v)
		if err != nil {
			return types.String(fmt.Sprint(v)), true
		}
		return d, true
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return types.Long(i), true
		}
		return types.String(v.String()), true
	case int:
		return types.Long(int64(v)), true
	case int64:
		return types.Long(v), true
	case []any:
		vals := make([]types.Value, 0, len(v))
		for _, e := range v {
			if cv, ok := toValue(e); ok {
				vals = append(vals, cv)
			}
		}
		return types.NewSet(vals...), true
	case []string:
		vals := make([]types.Value, len(v))
		for i, e := range v {
			vals[i] = types.String(e)
		}
		return types.NewSet(vals...), true
	case map[string]any:
		return toRecord(v), true
	}
	return nil, false
}

func toRecord(m map[string]any) types.Record {
	if len(m) == 0 {
		return emptyRecord
	}
	rm, pooled := recordMap(len(m))
	for k, v := range m {
		if cv, ok := toValue(v); ok {
			rm[types.String(k)] = cv
		}
	}
	r := types.NewRecord(rm)
	putRecordMap(rm, pooled)
	return r
}

// emptyRecord is the record of no attributes (records are immutable, so
// it is shared). It is made from an empty map, not nil, as toRecord always
// made it: Cedar encodes the two differently in JSON.
var emptyRecord = types.NewRecord(types.RecordMap{})

// emptyValue is emptyRecord boxed, for a decision without arguments.
var emptyValue types.Value = emptyRecord

// Every decision builds two records (its context, and a call's arguments)
// from a map that types.NewRecord then copies; the maps are recycled
// rather than allocated twice. Only small ones are: a Go map keeps the
// capacity it grew to when cleared, and a copy of it would too.
const pooledRecordLen = 8

var recordMaps = sync.Pool{New: func() any { return make(types.RecordMap, pooledRecordLen) }}

// recordMap returns an empty map for n attributes, and whether it comes
// from the pool.
func recordMap(n int) (types.RecordMap, bool) {
	if n > pooledRecordLen {
		return make(types.RecordMap, n), false
	}
	return recordMaps.Get().(types.RecordMap), true
}

// putRecordMap recycles a map from recordMap once NewRecord has copied it.
func putRecordMap(m types.RecordMap, pooled bool) {
	if pooled {
		clear(m)
		recordMaps.Put(m)
	}
}
