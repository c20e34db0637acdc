// LoopbackCatalogServer.java - runs Apache Iceberg's REST catalog server bound to one address.
//
// The server is iceberg-open-api's RESTCatalogServer (the reference server of the REST catalog spec):
// its backend catalog is built by its own code from the CATALOG_* environment, and requests are served
// by iceberg-core's RESTCatalogServlet.  Only the listening socket is ours: RESTCatalogServer.start()
// binds every interface (Jetty's Server(port)) and has no setting for the host, and the stack binds
// 127.0.0.1 only.  Run by scripts/catalog.sh as a single source file:
//   java -cp '<jars>/*' LoopbackCatalogServer.java HOST PORT
import java.lang.reflect.Constructor;
import java.lang.reflect.Method;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.gzip.GzipHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public final class LoopbackCatalogServer {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: LoopbackCatalogServer HOST PORT");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);

        // The server's constructor, backend set-up and adapter are package-private: reached by
        // reflection, so the catalog is exactly the one RESTCatalogServer would build.
        Class<?> serverClass = Class.forName("org.apache.iceberg.rest.RESTCatalogServer");
        Constructor<?> newServer = serverClass.getDeclaredConstructor();
        newServer.setAccessible(true);
        Method backend = serverClass.getDeclaredMethod("initializeBackendCatalog");
        backend.setAccessible(true);
        Object context = backend.invoke(newServer.newInstance());
        Class<?> adapterClass = Class.forName("org.apache.iceberg.rest.RESTServerCatalogAdapter");
        Constructor<?> newAdapter = adapterClass.getDeclaredConstructor(context.getClass());
        newAdapter.setAccessible(true);
        RESTCatalogAdapter adapter = (RESTCatalogAdapter) newAdapter.newInstance(context);

        ServletContextHandler handler = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
        handler.addServlet(new ServletHolder(new RESTCatalogServlet(adapter)), "/*");
        handler.insertHandler(new GzipHandler());

        Server http = new Server();
        ServerConnector connector = new ServerConnector(http);
        connector.setHost(host);
        connector.setPort(port);
        http.addConnector(connector);
        http.setHandler(handler);
        http.start();
        System.out.println("iceberg rest catalog: listening on " + host + ":" + port);
        http.join();
    }
}
