package capture

import "github.com/llmaudittrail/llmaudittrail/llmapi"

// bedrockProvider is the Amazon Bedrock runtime of each region in
// BedrockRegions: its calls are recorded by the interception proxy and the
// Hook as aws.bedrock; those of its OpenAI-compatible endpoint
// (/openai/v1/chat/completions) are read in OpenAI's format, the others as
// plain HTTP exchanges. It has no default upstream.
var bedrockProvider = llmapi.Provider{Name: "bedrock", System: "aws.bedrock", Hosts: bedrockHosts(), Format: openAI{}}

// BedrockRegions are the AWS regions whose Bedrock runtime host
// (bedrock-runtime.REGION.amazonaws.com) is in DefaultInterceptHosts. X.509
// name constraints cannot say "bedrock-runtime.*.amazonaws.com", and
// "amazonaws.com" would let the CA vouch for all of AWS, so each region is
// named; a region missing here goes in --intercept-hosts.
var BedrockRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1",
	"ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
	"eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
	"il-central-1", "me-central-1", "me-south-1", "af-south-1",
	"ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7",
}

func bedrockHosts() []string {
	out := make([]string, len(BedrockRegions))
	for i, r := range BedrockRegions {
		out[i] = "bedrock-runtime." + r + ".amazonaws.com"
	}
	return out
}
