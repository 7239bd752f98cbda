package awssim

import (
	"fmt"
	"net/http"
	"strconv"
)

type xmlSnapshot struct {
	SnapshotID  string   `xml:"snapshotId"`
	VolumeID    string   `xml:"volumeId"`
	Status      string   `xml:"status"`
	StartTime   string   `xml:"startTime"`
	Progress    string   `xml:"progress"`
	OwnerID     string   `xml:"ownerId"`
	VolumeSize  int      `xml:"volumeSize"`
	Description string   `xml:"description"`
	Encrypted   bool     `xml:"encrypted"`
	KMSKeyID    string   `xml:"kmsKeyId,omitempty"`
	StorageTier string   `xml:"storageTier"`
	TagSet      []xmlTag `xml:"tagSet>item,omitempty"`
}

func checkSnapshotID(id string) *apiError {
	if !snapIDRE.MatchString(id) {
		return &apiError{http.StatusBadRequest, "InvalidSnapshotID.Malformed",
			fmt.Sprintf("Invalid id: \"%s\" (expecting \"snap-...\")", id)}
	}
	return nil
}

func notFoundSnapshot(id string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidSnapshot.NotFound",
		fmt.Sprintf("The snapshot '%s' does not exist.", id)}
}

func (s *Server) lookupSnapshot(rg *ec2Region, id string) (*snapshot, *apiError) {
	if id == "" {
		return nil, missing("SnapshotId")
	}
	if e := checkSnapshotID(id); e != nil {
		return nil, e
	}
	sn, ok := rg.snapshots[id]
	if !ok {
		return nil, notFoundSnapshot(id)
	}
	return sn, nil
}

func (s *Server) describeSnapshots(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	ids := q.form.list("SnapshotId")
	owners := q.form.list("Owner")
	users := q.form.list("RestorableBy")
	for _, id := range ids {
		if e := checkSnapshotID(id); e != nil {
			return nil, e
		}
		if _, ok := rg.snapshots[id]; !ok {
			return nil, notFoundSnapshot(id)
		}
	}
	now := s.now()
	var out []xmlSnapshot
	for _, id := range sortedKeys(rg.snapshots) {
		sn := rg.snapshots[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		if len(owners) > 0 && !ownerMatch(owners, sn.owner, s.opts.Account) {
			continue
		}
		if len(users) > 0 {
			ok := false
			for _, u := range users {
				ok = ok || sn.volumePublic || sn.volumeUsers[u] || sn.owner == u || (u == "self" && sn.owner == s.opts.Account)
			}
			if !ok {
				continue
			}
		}
		status, progress := sn.state(now)
		keep := true
		for _, f := range q.form.filters() {
			if ok, handled := tagFilter(f, sn.tags); handled {
				keep = keep && ok
				continue
			}
			var v string
			switch f.name {
			case "snapshot-id":
				v = sn.id
			case "status":
				v = status
			case "owner-id":
				v = sn.owner
			case "volume-id":
				v = sn.volumeID
			case "description":
				v = sn.description
			case "encrypted":
				v = strconv.FormatBool(sn.encrypted)
			case "volume-size":
				v = strconv.Itoa(sn.sizeGiB)
			default:
				return nil, badParam("The filter '%s' is invalid", f.name)
			}
			keep = keep && anyMatch(f.values, v)
		}
		if !keep {
			continue
		}
		out = append(out, xmlSnapshot{
			SnapshotID: sn.id, VolumeID: sn.volumeID, Status: status, StartTime: ts(sn.started),
			Progress: progress, OwnerID: sn.owner, VolumeSize: sn.sizeGiB, Description: sn.description,
			Encrypted: sn.encrypted, KMSKeyID: sn.kmsKeyID, StorageTier: "standard", TagSet: tagSet(sn.tags),
		})
	}
	return resp(q, struct {
		Snapshots []xmlSnapshot `xml:"snapshotSet>item"`
	}{out}), nil
}

type xmlVolumePerm struct {
	UserID string `xml:"userId,omitempty"`
	Group  string `xml:"group,omitempty"`
}

func (s *Server) describeSnapshotAttribute(q *req) (any, *apiError) {
	sn, e := s.lookupSnapshot(s.ec2[q.region], q.form.get("SnapshotId"))
	if e != nil {
		return nil, e
	}
	switch a := q.form.get("Attribute"); a {
	case "createVolumePermission":
		var perms []xmlVolumePerm
		if sn.volumePublic {
			perms = append(perms, xmlVolumePerm{Group: "all"})
		}
		for _, u := range sortedKeys(sn.volumeUsers) {
			perms = append(perms, xmlVolumePerm{UserID: u})
		}
		return resp(q, struct {
			SnapshotID string          `xml:"snapshotId"`
			Perms      []xmlVolumePerm `xml:"createVolumePermission>item"`
		}{sn.id, perms}), nil
	case "":
		return nil, missing("Attribute")
	default:
		return nil, badParam("Value (%s) for parameter attribute is invalid.", a)
	}
}

func (s *Server) modifySnapshotAttribute(q *req) (any, *apiError) {
	sn, e := s.lookupSnapshot(s.ec2[q.region], q.form.get("SnapshotId"))
	if e != nil {
		return nil, e
	}
	q.call.IDs = []string{sn.id}
	type change struct {
		add         bool
		user, group string
	}
	var changes []change
	for _, m := range q.form.structs("CreateVolumePermission.Add") {
		changes = append(changes, change{true, m["UserId"], m["Group"]})
	}
	for _, m := range q.form.structs("CreateVolumePermission.Remove") {
		changes = append(changes, change{false, m["UserId"], m["Group"]})
	}
	if op := q.form.get("OperationType"); op != "" {
		if op != "add" && op != "remove" {
			return nil, badParam("Value (%s) for parameter operationType is invalid", op)
		}
		for _, u := range q.form.list("UserId") {
			changes = append(changes, change{op == "add", u, ""})
		}
		for _, g := range q.form.list("UserGroup") {
			changes = append(changes, change{op == "add", "", g})
		}
	}
	if len(changes) == 0 {
		return nil, missing("CreateVolumePermission")
	}
	for _, c := range changes {
		if c.user != "" && !accountIDRE.MatchString(c.user) {
			return nil, badParam("Invalid user id: %s", c.user)
		}
		if c.group != "" && c.group != "all" {
			return nil, badParam("Invalid group: %s", c.group)
		}
	}
	for _, c := range changes {
		if c.user != "" {
			if c.add {
				sn.volumeUsers[c.user] = true
			} else {
				delete(sn.volumeUsers, c.user)
			}
		}
		if c.group != "" {
			sn.volumePublic = c.add
		}
	}
	return resp(q, returnTrue{true}), nil
}

func (s *Server) deleteSnapshot(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	sn, e := s.lookupSnapshot(rg, q.form.get("SnapshotId"))
	if e != nil {
		return nil, e
	}
	q.call.IDs = []string{sn.id}
	for _, id := range sortedKeys(rg.images) {
		if rg.images[id].snapshotID == sn.id {
			return nil, &apiError{http.StatusBadRequest, "InvalidSnapshot.InUse",
				fmt.Sprintf("The snapshot %s is currently in use by %s", sn.id, id)}
		}
	}
	delete(rg.snapshots, sn.id)
	return resp(q, returnTrue{true}), nil
}
