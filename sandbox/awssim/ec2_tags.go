package awssim

import (
	"fmt"
	"net/http"
	"strings"
)

// taggable finds the tag map of a resource of the region by id prefix.
func (s *Server) taggable(rg *ec2Region, id string) (map[string]string, string, *apiError) {
	switch {
	case strings.HasPrefix(id, "ami-"):
		if im, ok := rg.images[id]; ok {
			return im.tags, "image", nil
		}
		return nil, "", notFoundAMI(id)
	case strings.HasPrefix(id, "snap-"):
		if sn, ok := rg.snapshots[id]; ok {
			return sn.tags, "snapshot", nil
		}
		return nil, "", notFoundSnapshot(id)
	case strings.HasPrefix(id, "i-"):
		in, e := s.lookupInstance(rg, id)
		if e != nil {
			return nil, "", e
		}
		return in.tags, "instance", nil
	}
	return nil, "", &apiError{http.StatusBadRequest, "InvalidID",
		fmt.Sprintf("The ID '%s' is not valid (the sandbox tags images, snapshots and instances)", id)}
}

func (s *Server) createTags(q *req) (any, *apiError) {
	return s.changeTags(q, true)
}

func (s *Server) deleteTags(q *req) (any, *apiError) {
	return s.changeTags(q, false)
}

func (s *Server) changeTags(q *req, add bool) (any, *apiError) {
	rg := s.ec2[q.region]
	ids := q.form.list("ResourceId")
	if len(ids) == 0 {
		return nil, missing("ResourceId")
	}
	tags := q.form.structs("Tag")
	if add && len(tags) == 0 {
		return nil, missing("Tag")
	}
	// Resolve every resource first: EC2 fails the whole call on one bad id.
	maps := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		m, _, e := s.taggable(rg, id)
		if e != nil {
			return nil, e
		}
		maps = append(maps, m)
	}
	for _, t := range tags {
		if t["Key"] == "" {
			return nil, badParam("Tag keys must not be empty")
		}
		if strings.HasPrefix(t["Key"], "aws:") && add {
			return nil, badParam("Tag keys starting with 'aws:' are reserved for internal use")
		}
	}
	for _, m := range maps {
		if !add && len(tags) == 0 {
			clear(m)
		}
		for _, t := range tags {
			if add {
				m[t["Key"]] = t["Value"]
			} else if v, ok := t["Value"]; !ok || m[t["Key"]] == v {
				delete(m, t["Key"])
			}
		}
	}
	q.call.IDs = ids
	return resp(q, returnTrue{true}), nil
}

type xmlTagDesc struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

func (s *Server) describeTags(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	var all []xmlTagDesc
	add := func(id, typ string, tags map[string]string) {
		for _, k := range sortedKeys(tags) {
			all = append(all, xmlTagDesc{id, typ, k, tags[k]})
		}
	}
	for _, id := range sortedKeys(rg.images) {
		add(id, "image", rg.images[id].tags)
	}
	for _, id := range sortedKeys(rg.instances) {
		add(id, "instance", rg.instances[id].tags)
	}
	for _, id := range sortedKeys(rg.snapshots) {
		add(id, "snapshot", rg.snapshots[id].tags)
	}
	var out []xmlTagDesc
	for _, t := range all {
		keep := true
		for _, f := range q.form.filters() {
			var v string
			switch f.name {
			case "resource-id":
				v = t.ResourceID
			case "resource-type":
				v = t.ResourceType
			case "key":
				v = t.Key
			case "value":
				v = t.Value
			default:
				return nil, badParam("The filter '%s' is invalid", f.name)
			}
			keep = keep && anyMatch(f.values, v)
		}
		if keep {
			out = append(out, t)
		}
	}
	return resp(q, struct {
		Tags []xmlTagDesc `xml:"tagSet>item"`
	}{out}), nil
}

func (s *Server) describeRegions(q *req) (any, *apiError) {
	type region struct {
		Name     string `xml:"regionName"`
		Endpoint string `xml:"regionEndpoint"`
		OptIn    string `xml:"optInStatus"`
	}
	names := q.form.list("RegionName")
	var out []region
	for _, r := range s.opts.Regions {
		if len(names) > 0 && !contains(names, r) {
			continue
		}
		out = append(out, region{r, "ec2." + r + ".amazonaws.com", "opt-in-not-required"})
	}
	return resp(q, struct {
		Regions []region `xml:"regionInfo>item"`
	}{out}), nil
}
