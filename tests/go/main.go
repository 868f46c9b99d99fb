// Drives vmimages with the official Go SDK (vm 2023-03-13), as docs/testing.md shows; with
// VMIMAGES_SAME_SECOND set, also the 2026-04-01 client through the flows whose calls carry one
// signature when they fall in one second (the SDK stamps requests to the second).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/zenlayer/zenlayercloud-sdk-go/zenlayercloud/common"
	vm "github.com/zenlayer/zenlayercloud-sdk-go/zenlayercloud/vm20230313"
	vm26 "github.com/zenlayer/zenlayercloud-sdk-go/zenlayercloud/vm20260401"
)

func main() {
	cfg := common.NewConfig()
	cfg.Scheme = os.Getenv("VMIMAGES_SCHEME") // "http", or "https" with SSL_CERT_FILE
	cfg.Domain = os.Getenv("VMIMAGES_DOMAIN") // "127.0.0.1:PORT"
	client, err := vm.NewClient(cfg, os.Getenv("VMIMAGES_KEY_ID"), os.Getenv("VMIMAGES_KEY_PASSWORD"))
	if err != nil {
		panic(err)
	}
	out := map[string]interface{}{}

	list := vm.NewDescribeImagesRequest()
	list.ZoneId = "FRA-A"
	list.OsType = "Linux" // as the SDK documents it
	images, err := client.DescribeImages(list)
	if err != nil {
		panic(err)
	}
	out["linuxInFra"] = images.Response.TotalCount

	create := vm.NewCreateImageRequest()
	create.InstanceId = os.Getenv("VMIMAGES_INSTANCE")
	create.ImageName = "from-go"
	created, err := client.CreateImages(create)
	if err != nil {
		panic(err)
	}
	out["imageId"] = created.Response.ImageId

	modify := vm.NewModifyImagesAttributesRequest() // Terraform's shape: only imageIds
	modify.ImageIds = []string{created.Response.ImageId}
	if _, err := client.ModifyImagesAttributes(modify); err != nil {
		panic(err)
	}
	out["modified"] = true

	bad := vm.NewDescribeImagesRequest()
	bad.ZoneId = "nowhere"
	_, err = client.DescribeImages(bad)
	if sdkErr, ok := err.(*common.ZenlayerCloudSdkError); ok {
		out["errorCode"] = sdkErr.Code
		out["errorRequestId"] = sdkErr.RequestId
	}
	if os.Getenv("VMIMAGES_SAME_SECOND") != "" {
		sameSecond(cfg, out)
	}
	text, _ := json.Marshal(out)
	fmt.Println(string(text))
}

// startOfASecond waits for the next second to begin, so the calls after it share their stamp.
func startOfASecond() int64 {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 5*time.Millisecond)))
	return time.Now().Unix()
}

// sameSecond: a new image polled until it is built; then, in one second, read, changed with
// only its id (Terraform's update with an empty description) and deleted (its destroy), the
// last two with the same body; then deleted again.
func sameSecond(cfg *common.Config, out map[string]interface{}) {
	client, err := vm26.NewClient(cfg, os.Getenv("VMIMAGES_KEY_ID"), os.Getenv("VMIMAGES_KEY_PASSWORD"))
	if err != nil {
		panic(err)
	}
	create := vm26.NewCreateImageRequest()
	instance, name := os.Getenv("VMIMAGES_INSTANCE"), "same-second"
	create.InstanceId, create.ImageName = &instance, &name
	created, err := client.CreateImage(create)
	if err != nil {
		panic(err)
	}
	ids, zone := []string{*created.Response.ImageId}, "FRA-A" // the instance's zone
	for polls := 0; ; polls++ {                               // the SDK's users poll a build like this, many times a second
		list := vm26.NewDescribeImagesRequest()
		list.ImageIds, list.ZoneId = ids, &zone
		got, err := client.DescribeImages(list)
		if err != nil {
			panic(err)
		}
		if status := got.Response.DataSet[0].ImageStatus; *status != "CREATING" || polls > 500 {
			out["builtAs"], out["polls"] = *status, polls+1
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	second := startOfASecond()
	list := vm26.NewDescribeImagesRequest()
	list.ImageIds, list.ZoneId = ids, &zone
	if _, err := client.DescribeImages(list); err != nil {
		panic(err)
	}
	modify := vm26.NewModifyImagesAttributesRequest()
	modify.ImageIds = ids
	if _, err := client.ModifyImagesAttributes(modify); err != nil {
		panic(err)
	}
	remove := vm26.NewDeleteImagesRequest()
	remove.ImageIds = ids
	if _, err := client.DeleteImages(remove); err != nil {
		panic(err)
	}
	out["sameSecond"] = time.Now().Unix() == second
	_, err = client.DeleteImages(remove)
	if sdkErr, ok := err.(*common.ZenlayerCloudSdkError); ok {
		out["deletedAgain"] = sdkErr.Code
	}
}
