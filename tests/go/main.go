// Drives vmimages with the official Go SDK (vm 2023-03-13), as docs/testing.md shows.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/zenlayer/zenlayercloud-sdk-go/zenlayercloud/common"
	vm "github.com/zenlayer/zenlayercloud-sdk-go/zenlayercloud/vm20230313"
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
	text, _ := json.Marshal(out)
	fmt.Println(string(text))
}
