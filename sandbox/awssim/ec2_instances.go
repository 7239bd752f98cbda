package awssim

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlInstance struct {
	InstanceID     string   `xml:"instanceId"`
	ImageID        string   `xml:"imageId"`
	State          xmlState `xml:"instanceState"`
	PrivateDNSName string   `xml:"privateDnsName"`
	InstanceType   string   `xml:"instanceType"`
	LaunchTime     string   `xml:"launchTime"`
	Placement      struct {
		AvailabilityZone string `xml:"availabilityZone"`
		Tenancy          string `xml:"tenancy"`
	} `xml:"placement"`
	Architecture   string   `xml:"architecture"`
	RootDeviceType string   `xml:"rootDeviceType"`
	RootDeviceName string   `xml:"rootDeviceName"`
	TagSet         []xmlTag `xml:"tagSet>item,omitempty"`
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

func (s *Server) instanceXML(in *instance) xmlInstance {
	code, name := in.state(s.now())
	x := xmlInstance{
		InstanceID: in.id, ImageID: in.imageID, State: xmlState{code, name},
		PrivateDNSName: "ip-10-0-0-1." + in.az[:len(in.az)-1] + ".compute.internal",
		InstanceType:   in.instanceType, LaunchTime: ts(in.launched),
		Architecture: "x86_64", RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		TagSet: tagSet(in.tags),
	}
	x.Placement.AvailabilityZone = in.az
	x.Placement.Tenancy = "default"
	return x
}

func (s *Server) lookupInstance(rg *ec2Region, id string) (*instance, *apiError) {
	if !instanceIDRE.MatchString(id) {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.Malformed",
			fmt.Sprintf("Invalid id: \"%s\"", id)}
	}
	in, ok := rg.instances[id]
	if !ok {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound",
			fmt.Sprintf("The instance ID '%s' does not exist", id)}
	}
	return in, nil
}

func (s *Server) runInstances(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	if tok := q.form.get("ClientToken"); tok != "" {
		q.call.ClientToken = tok
		if rid, ok := rg.runTokens[tok]; ok {
			q.call.Replay = true
			return resp(q, s.reservation(rg, rid)), nil
		}
	}
	im, e := s.lookupImage(q.region, q.form.get("ImageId"))
	if e != nil {
		return nil, e
	}
	if st := im.state(s.now()); st != "available" {
		return nil, &apiError{http.StatusBadRequest, "InvalidAMIID.Unavailable",
			fmt.Sprintf("AMI '%s' is %s, not available", im.id, st)}
	}
	if !s.canLaunch(im, s.opts.Account) {
		return nil, &apiError{http.StatusBadRequest, "InvalidAMIID.NotFound",
			fmt.Sprintf("The image id '[%s]' does not exist", im.id)}
	}
	minC, err1 := strconv.Atoi(q.form.get("MinCount"))
	maxC, err2 := strconv.Atoi(q.form.get("MaxCount"))
	if err1 != nil || err2 != nil {
		return nil, missing("MinCount/MaxCount")
	}
	if minC < 1 || maxC < minC {
		return nil, badParam("Invalid MinCount %d / MaxCount %d", minC, maxC)
	}
	if maxC > 20 {
		return nil, &apiError{http.StatusBadRequest, "InstanceLimitExceeded",
			"You have requested more instances (" + strconv.Itoa(maxC) + ") than your current instance limit of 20 allows for the specified instance type."}
	}
	itype := q.form.get("InstanceType")
	if itype == "" {
		itype = "m1.small"
	}
	az := q.form.get("Placement.AvailabilityZone")
	if az == "" {
		az = q.region + "a"
	}
	now := s.now()
	rid := "r-" + randHex(17)
	tags := q.form.tagSpecs("instance")
	for i := 0; i < maxC; i++ {
		in := &instance{
			id: newInstanceID(), imageID: im.id, instanceType: itype, reservationID: rid,
			launched: now, runningAt: now.Add(s.opts.InstanceStartTime), sizeGiB: im.sizeGiB,
			tags: copyTags(tags), az: az,
		}
		rg.instances[in.id] = in
		q.call.IDs = append(q.call.IDs, in.id)
	}
	if tok := q.form.get("ClientToken"); tok != "" {
		rg.runTokens[tok] = rid
	}
	return resp(q, s.reservation(rg, rid)), nil
}

func (s *Server) reservation(rg *ec2Region, rid string) xmlReservation {
	r := xmlReservation{ReservationID: rid, OwnerID: s.opts.Account}
	for _, id := range sortedKeys(rg.instances) {
		if in := rg.instances[id]; in.reservationID == rid {
			r.Instances = append(r.Instances, s.instanceXML(in))
		}
	}
	return r
}

func (s *Server) describeInstances(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	ids := q.form.list("InstanceId")
	for _, id := range ids {
		if _, e := s.lookupInstance(rg, id); e != nil {
			return nil, e
		}
	}
	byRes := map[string]*xmlReservation{}
	var order []string
	for _, id := range sortedKeys(rg.instances) {
		in := rg.instances[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		_, state := in.state(s.now())
		// Terminated instances stay visible for about an hour in EC2.
		if state == "terminated" && s.now().Sub(in.terminatedAt) > time.Hour {
			continue
		}
		keep := true
		for _, f := range q.form.filters() {
			if ok, handled := tagFilter(f, in.tags); handled {
				keep = keep && ok
				continue
			}
			var v string
			switch f.name {
			case "instance-state-name":
				v = state
			case "image-id":
				v = in.imageID
			case "instance-id":
				v = in.id
			case "instance-type":
				v = in.instanceType
			case "availability-zone":
				v = in.az
			default:
				return nil, badParam("The filter '%s' is invalid", f.name)
			}
			keep = keep && anyMatch(f.values, v)
		}
		if !keep {
			continue
		}
		r := byRes[in.reservationID]
		if r == nil {
			r = &xmlReservation{ReservationID: in.reservationID, OwnerID: s.opts.Account}
			byRes[in.reservationID] = r
			order = append(order, in.reservationID)
		}
		r.Instances = append(r.Instances, s.instanceXML(in))
	}
	out := make([]xmlReservation, 0, len(order))
	for _, rid := range order {
		out = append(out, *byRes[rid])
	}
	return resp(q, struct {
		Reservations []xmlReservation `xml:"reservationSet>item"`
	}{out}), nil
}

func (s *Server) terminateInstances(q *req) (any, *apiError) {
	rg := s.ec2[q.region]
	ids := q.form.list("InstanceId")
	if len(ids) == 0 {
		return nil, missing("InstanceId")
	}
	for _, id := range ids {
		if _, e := s.lookupInstance(rg, id); e != nil {
			return nil, e
		}
	}
	type change struct {
		InstanceID    string   `xml:"instanceId"`
		CurrentState  xmlState `xml:"currentState"`
		PreviousState xmlState `xml:"previousState"`
	}
	var out []change
	for _, id := range ids {
		in := rg.instances[id]
		pc, pn := in.state(s.now())
		if in.terminatedAt.IsZero() {
			in.terminatedAt = s.now()
		}
		// EC2 answers shutting-down first; the sandbox skips straight to terminated.
		out = append(out, change{id, xmlState{48, "terminated"}, xmlState{pc, pn}})
	}
	q.call.IDs = ids
	return resp(q, struct {
		Instances []change `xml:"instancesSet>item"`
	}{out}), nil
}

func copyTags(t map[string]string) map[string]string {
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}
