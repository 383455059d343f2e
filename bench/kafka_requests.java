// bench/kafka_requests.java: what a Kafka broker is asked to do, by request
// type, over a window: `java bench/kafka_requests.java PID DELAY SECONDS`
// (JDK 11 or later, single-file launch; PID is the broker's JVM, run as its
// user or root) attaches at once, waits DELAY seconds (attaching starts the
// broker's management agent, a pause of the broker: let it fall before the
// window, and the JDK's start too; DELAY counts from this JVM's start), then counts for SECONDS and prints one
// line
//   KAFKA_REQUESTS window=S total=R/s Produce=R/s Fetch=R/s Metadata=R/s ...
//   messages_in=R/s bytes_in=R/s
// from the broker's own counters (kafka.network RequestMetrics
// RequestsPerSec, summed over versions; FetchConsumer and FetchFollower are
// subsets of Fetch and left out of total; messages and bytes in are
// BrokerTopicMetrics, every topic, __consumer_offsets included). It attaches
// to the JVM and starts its local management agent (no JMX port needed).
// For example, started with a 20 s run of bench/fleet.lua mode open
// (bench/peer.sh does this with PEER_KAFKA_REQUESTS=1):
//   java bench/kafka_requests.java "$(cat build-services/kafka.pid)" 6 12 &
import com.sun.tools.attach.VirtualMachine;
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class kafka_requests {
    static Map<String, Long> snapshot(MBeanServerConnection c) throws Exception {
        Map<String, Long> m = new TreeMap<>();
        for (ObjectName n : c.queryNames(
                 new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*"), null))
            m.merge(n.getKeyProperty("request"),
                    ((Number) c.getAttribute(n, "Count")).longValue(), Long::sum);
        String[][] topic = {{"MessagesInPerSec", " messages_in"}, {"BytesInPerSec", " bytes_in"}};
        for (String[] t : topic)
            for (ObjectName n : c.queryNames(
                     new ObjectName("kafka.server:type=BrokerTopicMetrics,name=" + t[0]), null))
                m.put(t[1], ((Number) c.getAttribute(n, "Count")).longValue());
        return m;
    }

    public static void main(String[] a) throws Exception {
        if (a.length != 3) {
            System.err.println("usage: java bench/kafka_requests.java BROKER_PID DELAY SECONDS");
            System.exit(2);
        }
        VirtualMachine vm = VirtualMachine.attach(a[0]);
        String addr = vm.startLocalManagementAgent();
        vm.detach();
        try (JMXConnector j = JMXConnectorFactory.connect(new JMXServiceURL(addr))) {
            MBeanServerConnection c = j.getMBeanServerConnection();
            snapshot(c); /* the first queries load what they need: before the window */
            /* DELAY counts from this JVM's start (before the compile and the attach) */
            long start = java.lang.management.ManagementFactory.getRuntimeMXBean().getStartTime();
            long left = start + (long) (Double.parseDouble(a[1]) * 1000) - System.currentTimeMillis();
            if (left > 0)
                Thread.sleep(left);
            Map<String, Long> s0 = snapshot(c);
            long t0 = System.nanoTime();
            Thread.sleep((long) (Double.parseDouble(a[2]) * 1000));
            Map<String, Long> s1 = snapshot(c);
            double dt = (System.nanoTime() - t0) / 1e9, total = 0;
            StringBuilder types = new StringBuilder(), topics = new StringBuilder();
            for (Map.Entry<String, Long> e : s1.entrySet()) {
                String k = e.getKey();
                double r = (e.getValue() - s0.getOrDefault(k, 0L)) / dt;
                if (r == 0)
                    continue;
                if (k.startsWith(" ")) { // messages_in, bytes_in
                    topics.append(String.format("%s=%.1f/s", k, r));
                    continue;
                }
                if (!k.equals("FetchConsumer") && !k.equals("FetchFollower"))
                    total += r;
                types.append(String.format(" %s=%.1f/s", k, r));
            }
            System.out.printf("KAFKA_REQUESTS window=%.1fs total=%.1f/s%s%s%n", dt, total, types,
                              topics);
        }
    }
}
